-- Follow-up facts per patient: first reached contact after the index discharge, the
-- latest death report, the last reached contact alive, and the data cut-off.
with

followups as (
    select * from {{ ref('stg_emr__followups') }}
),

index_implants as (
    select * from {{ ref('int_implants_indexed') }} where is_index_implant
),

cutoff as (
    select max(contact_date) as data_cutoff_date from followups
),

after_discharge as (
    select
        followups.*,
    from followups
    inner join index_implants
        on index_implants.patient_key = followups.patient_key
        and followups.contact_date > index_implants.discharge_date
),

summarised as (
    select
        patient_key,
        count(*) filter (where outcome = 'reached') as n_reached,
        arg_min(nrs, contact_date) filter (where outcome = 'reached') as followup_nrs,
        max(contact_date) filter (where outcome = 'reached' and vital_status = 'alive')
            as last_alive_contact_date,
    from after_discharge
    group by patient_key
),

deaths as (
    select
        patient_key,
        arg_max(death_date, contact_date) as reported_death_date,
    from followups
    where vital_status = 'dead' and death_date is not null
    group by patient_key
)

select
    index_implants.patient_key,
    coalesce(summarised.n_reached, 0) as n_reached_followups,
    summarised.followup_nrs,
    summarised.last_alive_contact_date,
    deaths.reported_death_date,
    cutoff.data_cutoff_date,
from index_implants
cross join cutoff
left join summarised on summarised.patient_key = index_implants.patient_key
left join deaths on deaths.patient_key = index_implants.patient_key
