{{ config(unique_key='procedure_id') }}

with

source as (
    {{ latest_delivered('procedures', 'procedure_id') }}
),

renamed as (
    select
        idds_text(procedure_id) as procedure_id,
        idds_patient_key(patient_id) as patient_key,
        idds_text(admission_id) as admission_id,
        idds_text(procedure_code) as procedure_code,
        idds_text(procedure_name) as procedure_name,
        idds_timestamp(start_time) as started_at,
        idds_timestamp(end_time) as ended_at,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
