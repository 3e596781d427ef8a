{{ config(unique_key='program_id') }}

with

source as (
    {{ latest_delivered('pump_programs', 'program_id') }}
),

renamed as (
    select
        idds_text(program_id) as program_id,
        idds_text(implant_id) as implant_id,
        idds_timestamp(programmed_at) as programmed_at,
        idds_enum('pump_drug', drug) as drug,
        idds_number(concentration) as concentration_mg_per_ml,
        idds_number(daily_dose) as daily_dose,
        coalesce(idds_enum('daily_dose_unit', daily_dose_unit),
                 idds_enum('daily_dose_unit', idds_value_unit(daily_dose))) as daily_dose_unit,
        _delivery_id,
        _built_through,
    from source
),

converted as (
    select
        *,
        case daily_dose_unit when 'ug/d' then daily_dose / 1000 else daily_dose end as daily_dose_mg,
    from renamed
)

select * from converted
