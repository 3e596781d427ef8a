-- R-IT-01 (error): 0-3 screening trials; a drug recorded exactly when there was a trial.
select patient_key, itt_count, itt_drug from {{ ref('cohort_idds') }}
where itt_count not between 0 and 3 or ((itt_drug is null) <> (itt_count = 0))
