-- One row per included patient: the study's analytic cohort.
with

screened as (
    select * from {{ ref('int_patients_screened') }} where is_included
),

survival as (
    select * from {{ ref('int_survival_computed') }}
)

select
    screened.patient_key,
    screened.implant_id,
    screened.implant_date,
    cast(year(screened.implant_date) as integer) as implant_year,
    cast(screened.age_years as integer) as age_years,
    screened.sex,
    survival.in_hospital_death,
    survival.explanted,
    survival.explant_date,
    survival.followup_status,
    survival.followup_nrs,
    survival.death_date,
    survival.last_contact_date,
    cast(survival.os_days as integer) as os_days,
    cast(survival.os_months as double) as os_months,
    cast(survival.os_event as integer) as os_event,
from screened
inner join survival on survival.patient_key = screened.patient_key
