{{ config(unique_key='patient_key') }}

with

source as (
    {{ latest_delivered('patients', 'patient_id') }}
),

renamed as (
    select
        idds_patient_key(patient_id) as patient_key,
        idds_enum('sex', sex) as sex,
        idds_date(birth_date) as birth_date,
        idds_enum('insurance_type', insurance_type) as insurance_type,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
