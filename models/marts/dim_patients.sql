-- One row per patient of the extract (pseudonymised): demographics and where the
-- patient left the cohort flow.
with

patients as (
    select * from {{ ref('stg_emr__patients') }}
),

screened as (
    select * from {{ ref('int_patients_screened') }}
)

select
    patients.patient_key,
    patients.sex,
    cast(year(patients.birth_date) as integer) as birth_year,
    patients.insurance_type,
    cast(screened.n_implants as integer) as n_implants,
    screened.implant_id as index_implant_id,
    screened.is_included,
    screened.exclusion_step,
    screened.exclusion_reason,
from patients
left join screened on screened.patient_key = patients.patient_key
