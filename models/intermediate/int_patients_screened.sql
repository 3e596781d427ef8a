-- Every patient of the extract walked through the cohort rules in order; the first
-- rule a patient fails is the step where they leave, with its reason.
with

patients as (
    select * from {{ ref('stg_emr__patients') }}
),

implants as (
    select * from {{ ref('int_implants_indexed') }}
),

diagnoses as (
    select * from {{ ref('stg_emr__diagnoses') }}
),

per_patient as (
    select
        patient_key,
        count(*) as n_implants,
        count(*) filter (where is_index_implant) as n_index_implants,
    from implants
    group by patient_key
),

index_implants as (
    select * from implants where is_index_implant
),

malignancy as (
    select
        index_implants.patient_key,
        min(diagnoses.diagnosis_date) as first_primary_dx_date,
    from index_implants
    inner join diagnoses
        on diagnoses.patient_key = index_implants.patient_key
        and diagnoses.diagnosis_date <= coalesce(index_implants.discharge_date, index_implants.implant_date)
        and {{ is_primary_malignancy('diagnoses.icd10_code') }}
    group by index_implants.patient_key
),

baseline as (
    select
        patients.patient_key,
        patients.sex,
        index_implants.implant_id,
        index_implants.implant_date,
        date_sub('year', patients.birth_date, index_implants.implant_date) as age_years,
        index_implants.indication,
        malignancy.first_primary_dx_date,
        coalesce(per_patient.n_implants, 0) as n_implants,
        coalesce(per_patient.n_index_implants, 0) as n_index_implants,
    from patients
    left join per_patient on per_patient.patient_key = patients.patient_key
    left join index_implants on index_implants.patient_key = patients.patient_key
    left join malignancy on malignancy.patient_key = patients.patient_key
),

screened as (
    select
        *,
        case
            when n_implants = 0 then 'no_implant'
            when n_index_implants = 0 then 'no_first_implant'
            when implant_date not between date '{{ var("cohort_start") }}' and date '{{ var("cohort_end") }}'
                then 'implant_outside_window'
            when indication is distinct from 'cancer_pain' or first_primary_dx_date is null
                then 'nonmalignant_pain'
            when age_years is null then 'missing_data:age_years'
            when sex is null then 'missing_data:sex'
        end as exclusion_reason,
    from baseline
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
