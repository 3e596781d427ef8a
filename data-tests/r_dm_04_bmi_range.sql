-- R-DM-04 (error part): BMI 10-60.
select patient_key, bmi from {{ ref('cohort_idds') }}
where bmi not between 10 and 60
