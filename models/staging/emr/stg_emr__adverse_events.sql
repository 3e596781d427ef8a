{{ config(unique_key='event_id') }}

with

source as (
    {{ latest_delivered('adverse_events', 'event_id') }}
),

renamed as (
    select
        idds_text(event_id) as event_id,
        idds_patient_key(patient_id) as patient_key,
        idds_text(admission_id) as admission_id,
        idds_date(event_date) as event_date,
        idds_enum('event_type', event_type) as event_type,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
