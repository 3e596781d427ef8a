{{ config(unique_key='implant_id') }}

with

source as (
    {{ latest_delivered('idds_implants', 'implant_id') }}
),

renamed as (
    select
        idds_text(implant_id) as implant_id,
        idds_patient_key(patient_id) as patient_key,
        idds_text(procedure_id) as procedure_id,
        idds_text(device_model) as device_model,
        idds_enum('indication', indication) as indication,
        idds_enum('implant_reason', implant_reason) as implant_reason,
        idds_enum('yes_no', is_replacement) = 'yes' as is_replacement,
        idds_interspace(insertion_level) as insertion_level,
        idds_text(insertion_level) as insertion_level_as_delivered,
        idds_level(catheter_tip_level) as catheter_tip_level,
        idds_text(catheter_tip_level) as catheter_tip_level_as_delivered,
        idds_enum('catheter_direction', catheter_direction) as catheter_direction,
        idds_date(explant_date) as explant_date,
        idds_text(explant_reason) as explant_reason,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
