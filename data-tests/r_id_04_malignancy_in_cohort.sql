-- R-ID-04 (error): every cohort patient has a cancer-pain indication and a primary malignancy.
select cohort.patient_key, implants.indication, cohort.cancer_icd10 from {{ ref('cohort_idds') }} as cohort
inner join {{ ref('fct_implants') }} as implants on implants.implant_id = cohort.implant_id
where implants.indication is distinct from 'cancer_pain' or cohort.cancer_icd10 is null
