{{ config(unique_key='patient_key') }}

with

source as (
    select * from {{ source('emr', 'patients') }}
    {{ incremental_keys(source('emr', 'patients'), 'idds_text(patient_id)') }}
    {{ latest_version('idds_text(patient_id)') }}
),

renamed as (
    select
        idds_patient_key(patient_id) as patient_key,
        idds_enum('sex', sex) as sex,
        idds_date(birth_date) as birth_date,
        idds_enum('insurance_type', insurance_type) as insurance_type,
        _delivery_id,
        {{ built_through(source('emr', 'patients')) }} as _built_through,
    from source
)

select * from renamed
