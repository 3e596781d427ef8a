-- R-FU-04 (error): "stopped systemic opioids" needs a baseline opioid user.
select patient_key, systemic_opioid_after, baseline_ome_mg_per_day from {{ ref('cohort_idds') }}
where systemic_opioid_after = 'stopped' and not systemic_opioid_user
