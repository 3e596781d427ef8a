-- R-DT-03 (error): cancer diagnosis and pain onset on or before the implant. In the cohort;
-- and for cancer-pain implants whose malignancy was coded only after the implant admission.
select patient_key, implant_id, implant_date, cancer_dx_date, pain_onset_date, true as in_cohort,
from {{ ref('cohort_idds') }}
where cancer_dx_date > implant_date or pain_onset_date > implant_date
union all
select screened.patient_key, screened.implant_id, screened.implant_date, min(diagnoses.diagnosis_date),
       null, false,
from {{ ref('int_patients_screened') }} as screened
inner join {{ ref('stg_emr__diagnoses') }} as diagnoses
    on diagnoses.patient_key = screened.patient_key
    and diagnoses.diagnosis_date > screened.discharge_date
    and {{ is_primary_malignancy('diagnoses.icd10_code') }}
where screened.indication = 'cancer_pain' and screened.cancer_dx_date is null
group by all
