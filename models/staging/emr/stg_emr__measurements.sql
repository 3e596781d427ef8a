{{ config(unique_key='measurement_id') }}

with

source as (
    {{ latest_delivered('measurements', 'measurement_id') }}
),

renamed as (
    select
        idds_text(measurement_id) as measurement_id,
        idds_patient_key(patient_id) as patient_key,
        idds_text(admission_id) as admission_id,
        idds_timestamp(measured_at) as measured_at,
        idds_enum('measurement_item', item) as item,
        idds_text(value) as value_as_delivered,
        idds_number(value) as value_number,
        coalesce(
            lower(idds_text(unit)), idds_value_unit(value)
        ) as unit,
        idds_enum('pain_site', value) as pain_site,
        idds_enum('yes_no', value) as yes_no,
        _delivery_id,
        _built_through,
    from source
),

converted as (
    select
        *,
        -- one unit per item: height cm (m -> cm; a bare 1.0-2.5 is metres), weight kg
        -- (斤 = 0.5 kg), NRS and ADL points
        case
            when item = 'height' and (unit = 'm' or (unit is null and value_number between 1.0 and 2.5))
                then value_number * 100
            when item = 'weight' and unit = '斤' then value_number / 2
            else value_number
        end as value_numeric,
    from renamed
)

select * from converted
