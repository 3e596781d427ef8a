-- The initial pump prescription: the first programming of each implant.
with

programs as (
    select * from {{ ref('stg_emr__pump_programs') }}
)

select
    implant_id,
    arg_min(drug, programmed_at) as idds_drug,
    arg_min(daily_dose_mg, programmed_at) as initial_daily_dose_mg,
    arg_min(concentration_mg_per_ml, programmed_at) as initial_concentration_mg_per_ml,
    min(programmed_at) as first_programmed_at,
    count(*) as n_programs,
from programs
where implant_id is not null
group by implant_id
