-- R-OP-05 (error part): baseline OME 0 or 5-5,000 mg/day.
select patient_key, baseline_ome_mg_per_day from {{ ref('cohort_idds') }}
where baseline_ome_mg_per_day > 5000 or (baseline_ome_mg_per_day > 0 and baseline_ome_mg_per_day < 5)
