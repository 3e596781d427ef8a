-- Follow-up facts per index implant patient: reached contacts after the index discharge
-- (the first one's NRS; satisfaction and systemic opioid use from the latest that records
-- them; the last one alive), the latest death report, and the data cut-off.
with

followups as (
    select * from {{ ref('stg_emr__followups') }}
),

index_implants as (
    select * from {{ ref('int_implants_indexed') }} where is_index_implant
),

cutoff as (
    select
        {% if var('data_cutoff') %}
        date '{{ var("data_cutoff") }}' as data_cutoff_date
        {% else %}
        least(
            max(contact_date),
            coalesce(max(try_cast(_delivery_id as date)), max(contact_date))
        ) as data_cutoff_date
        {% endif %}
    from followups
),

after_discharge as (
    select
        index_implants.patient_key,
        followups.*  exclude (patient_key),
    from followups
    inner join index_implants
        on index_implants.patient_key = followups.patient_key
        and followups.contact_date > index_implants.discharge_date
    where followups.outcome = 'reached'
),

summarised as (
    select
        patient_key,
        count(*) as n_reached,
        arg_min(nrs, contact_date) as followup_nrs,
        arg_max(is_satisfied, contact_date) filter (where is_satisfied is not null) as satisfied,
        arg_max(systemic_opioid_after, contact_date) filter (where systemic_opioid_after is not null)
            as systemic_opioid_after,
        max(contact_date) filter (where vital_status = 'alive') as last_alive_contact_date,
    from after_discharge
    group by patient_key
),

deaths as (
    select
        patient_key,
        arg_max(death_date, contact_date) as reported_death_date,
    from followups
    where death_date is not null
    group by patient_key
)

select
    index_implants.patient_key,
    coalesce(summarised.n_reached, 0) as n_reached_followups,
    summarised.followup_nrs,
    summarised.satisfied,
    summarised.systemic_opioid_after,
    summarised.last_alive_contact_date,
    deaths.reported_death_date,
    cutoff.data_cutoff_date,
from index_implants
cross join cutoff
left join summarised on summarised.patient_key = index_implants.patient_key
left join deaths on deaths.patient_key = index_implants.patient_key
