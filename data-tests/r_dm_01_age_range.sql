-- R-DM-01 (error part): age at implant 18-100.
select patient_key, age_years from {{ ref('cohort_idds') }}
where age_years not between 18 and 100
