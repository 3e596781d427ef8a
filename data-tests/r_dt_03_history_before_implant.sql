-- R-DT-03 (error): cancer diagnosis and pain onset on or before the implant.
select patient_key, implant_date, cancer_dx_date, pain_onset_date from {{ ref('cohort_idds') }}
where cancer_dx_date > implant_date or pain_onset_date > implant_date
