{{ config(unique_key='admission_id') }}

with

source as (
    {{ latest_delivered('admissions', 'admission_id') }}
),

renamed as (
    select
        idds_text(admission_id) as admission_id,
        idds_patient_key(patient_id) as patient_key,
        idds_timestamp(admit_time) as admitted_at,
        idds_timestamp(discharge_time) as discharged_at,
        cast(idds_timestamp(admit_time) as date) as admission_date,
        cast(idds_timestamp(discharge_time) as date) as discharge_date,
        idds_text(department) as department,
        idds_enum('arrival_mode', arrival_mode) as arrival_mode,
        idds_enum('discharge_status', discharge_status) as discharge_status,
        idds_number(total_charge) as total_charge_cny,
        idds_number(self_pay) as self_pay_cny,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
