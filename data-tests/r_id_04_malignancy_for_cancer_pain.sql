-- R-ID-04 (error): a cancer-pain implant needs a malignant ICD-10 code (C00-C97) of the patient.
select screened.patient_key, screened.implant_id, screened.indication, screened.is_included as in_cohort,
from {{ ref('int_patients_screened') }} as screened
where screened.indication = 'cancer_pain'
  and not exists (
      select 1 from {{ ref('stg_emr__diagnoses') }} as diagnoses
      where diagnoses.patient_key = screened.patient_key and regexp_matches(diagnoses.icd10_code, '^C[0-9]{2}')
  )
