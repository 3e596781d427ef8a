{{ config(unique_key='diagnosis_id') }}

with

source as (
    {{ latest_delivered('diagnoses', 'diagnosis_id') }}
),

renamed as (
    select
        idds_text(diagnosis_id) as diagnosis_id,
        idds_patient_key(patient_id) as patient_key,
        idds_text(admission_id) as admission_id,
        idds_date(diagnosis_date) as diagnosis_date,
        idds_icd10(icd10_code) as icd10_code,
        idds_text(icd10_code) as icd10_code_as_delivered,
        idds_text(diagnosis_name) as diagnosis_name,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
