-- Every patient of the extract walked through the cohort rules in order; the first
-- rule a patient fails is the step where they leave, with its reason.
with

patients as (
    select * from {{ ref('stg_emr__patients') }}
),

implants as (
    select * from {{ ref('int_implants_indexed') }}
),

baseline as (
    select * from {{ ref('int_baseline_assembled') }}
),

per_patient as (
    select
        patient_key,
        count(*) as n_implants,
        count(*) filter (where is_index_implant) as n_index_implants,
    from implants
    group by patient_key
),

joined as (
    select
        patients.patient_key,
        coalesce(per_patient.n_implants, 0) as n_implants,
        coalesce(per_patient.n_index_implants, 0) as n_index_implants,
        baseline.* exclude (patient_key),
    from patients
    left join per_patient on per_patient.patient_key = patients.patient_key
    left join baseline on baseline.patient_key = patients.patient_key
),

screened as (
    select
        *,
        case
            when n_implants = 0 then 'no_implant'
            when n_index_implants = 0 then 'no_first_implant'
            when implant_date not between date '{{ var("cohort_start") }}' and date '{{ var("cohort_end") }}'
                then 'implant_outside_window'
            when indication is distinct from 'cancer_pain' or cancer_dx_date is null
                then 'nonmalignant_pain'
            {% for variable in var('required_baseline') -%}
            when {{ variable }} is null then 'missing_data:{{ variable }}'
            {% endfor -%}
        end as exclusion_reason,
    from joined
)

select
    *,
    case
        when exclusion_reason is null then 'included'
        when exclusion_reason like 'missing_data:%' then 'missing_data'
        else exclusion_reason
    end as exclusion_step,
    exclusion_reason is null as is_included,
from screened
