{{ config(unique_key='history_id') }}

with

source as (
    {{ latest_delivered('treatment_history', 'history_id') }}
),

renamed as (
    select
        idds_text(history_id) as history_id,
        idds_patient_key(patient_id) as patient_key,
        idds_enum('treatment_type', treatment_type) as treatment_type,
        -- month precision ("2021-03", "2021年3月") is the first of the month
        idds_month_date(start_date) as start_date,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
