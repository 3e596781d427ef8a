-- Anticancer and pain treatments dated before the index admission.
with

index_implants as (
    select implant_id, patient_key, admission_date
    from {{ ref('int_implants_indexed') }}
    where is_index_implant
),

history as (
    select * from {{ ref('stg_emr__treatment_history') }}
)

select
    index_implants.implant_id,
    coalesce(bool_or(history.treatment_type = 'surgery'), false) as prior_surgery,
    coalesce(bool_or(history.treatment_type in ('chemotherapy', 'radiotherapy')), false)
        as prior_chemoradiotherapy,
    coalesce(bool_or(history.treatment_type = 'immunotherapy'), false) as prior_immunotherapy,
    coalesce(bool_or(history.treatment_type = 'pain_intervention'), false) as prior_pain_intervention,
from index_implants
left join history
    on history.patient_key = index_implants.patient_key
    and history.start_date < index_implants.admission_date
group by index_implants.implant_id
