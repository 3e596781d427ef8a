{{ config(unique_key='order_id') }}

with

source as (
    {{ latest_delivered('medication_orders', 'order_id') }}
),

renamed as (
    select
        idds_text(order_id) as order_id,
        idds_patient_key(patient_id) as patient_key,
        idds_text(admission_id) as admission_id,
        idds_text(drug_name) as drug_name,
        idds_number(dose) as dose,
        coalesce(idds_enum('dose_unit', dose_unit), idds_enum('dose_unit', idds_value_unit(dose))) as dose_unit,
        idds_enum('route', route) as route,
        idds_enum('frequency', frequency) as frequency,
        idds_enum('order_kind', order_kind) as order_kind,
        idds_timestamp(start_time) as started_at,
        idds_timestamp(end_time) as ended_at,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
