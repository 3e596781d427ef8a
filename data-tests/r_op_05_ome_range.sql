-- R-OP-05 (error part): baseline OME at most 5,000 mg/day (0-5 mg/day is the warning band, no error).
select patient_key, baseline_ome_mg_per_day from {{ ref('cohort_idds') }}
where baseline_ome_mg_per_day > 5000
