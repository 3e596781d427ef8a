-- R-OR-01 (error part): surgery 15 min to 8 h, closure after incision.
select patient_key, surgery_duration_hours from {{ ref('cohort_idds') }}
where surgery_duration_hours is null or surgery_duration_hours not between 0.25 and 8
