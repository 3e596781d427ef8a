-- One row per pump implant (first implants and replacements), with its procedure,
-- admission and device facts.
with

implants as (
    select * from {{ ref('int_implants_indexed') }}
),

programs as (
    select * from {{ ref('int_pump_programs_initial') }}
)

select
    implants.implant_id,
    implants.patient_key,
    implants.procedure_id,
    implants.admission_id,
    implants.implant_date,
    cast(year(implants.implant_date) as integer) as implant_year,
    coalesce(implants.is_replacement, false) as is_replacement,
    coalesce(implants.is_index_implant, false) as is_index_implant,
    implants.indication,
    implants.implant_reason,
    implants.device_model,
    implants.insertion_level,
    implants.catheter_tip_level,
    implants.catheter_direction,
    date_diff('second', implants.implant_started_at, implants.implant_ended_at) / 3600.0
        as surgery_duration_hours,
    implants.explant_date,
    programs.idds_drug,
    programs.initial_daily_dose_mg,
    cast(coalesce(programs.n_programs, 0) as integer) as n_programs,
from implants
left join programs on programs.implant_id = implants.implant_id
