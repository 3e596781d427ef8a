{{ config(unique_key='followup_id') }}

with

source as (
    {{ latest_delivered('followups', 'followup_id') }}
),

renamed as (
    select
        idds_text(followup_id) as followup_id,
        idds_patient_key(patient_id) as patient_key,
        idds_date(contact_date) as contact_date,
        idds_enum('followup_outcome', outcome) as outcome,
        idds_enum('respondent', respondent) as respondent,
        idds_enum('vital_status', vital_status) as vital_status,
        idds_date(death_date) as death_date,
        cast(idds_number(nrs) as integer) as nrs,
        idds_enum('satisfied', satisfied) = 'yes' as is_satisfied,
        idds_text(dissatisfaction_reason) as dissatisfaction_reason,
        idds_enum('systemic_opioid_after', systemic_opioid) as systemic_opioid_after,
        _delivery_id,
        _built_through,
    from source
)

select * from renamed
