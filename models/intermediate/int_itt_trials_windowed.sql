-- Intrathecal screening trials in the 90 days before the index implant; drug and dose
-- (mg) of the last one.
with

index_implants as (
    select implant_id, patient_key, implant_started_at
    from {{ ref('int_implants_indexed') }}
    where is_index_implant
),

trials as (
    select * from {{ ref('stg_emr__itt_trials') }}
),

windowed as (
    select
        index_implants.implant_id,
        trials.*,
    from index_implants
    inner join trials
        on trials.patient_key = index_implants.patient_key
        and trials.trial_at >= index_implants.implant_started_at - interval {{ var('itt_window_days') }} day
        and trials.trial_at < index_implants.implant_started_at
)

select
    index_implants.implant_id,
    count(windowed.trial_id) as itt_count,
    arg_max(windowed.drug, windowed.trial_at) as itt_drug,
    arg_max(windowed.dose_mg, windowed.trial_at) as itt_dose_mg,
from index_implants
left join windowed on windowed.implant_id = index_implants.implant_id
group by index_implants.implant_id
