{{ config(unique_key='trial_id') }}

with

source as (
    {{ latest_delivered('itt_trials', 'trial_id') }}
),

renamed as (
    select
        idds_text(trial_id) as trial_id,
        idds_patient_key(patient_id) as patient_key,
        idds_timestamp(trial_time) as trial_at,
        idds_enum('it_drug', drug) as drug,
        idds_number(dose) as dose,
        coalesce(idds_enum('trial_dose_unit', dose_unit), idds_enum('trial_dose_unit', idds_value_unit(dose)))
            as dose_unit,
        idds_enum('trial_response', response) as response,
        _delivery_id,
        _built_through,
    from source
),

converted as (
    select
        *,
        case dose_unit when 'ug' then dose / 1000 else dose end as dose_mg,
    from renamed
)

select * from converted
