-- R-PU-03 (error part): initial daily dose morphine 0.02-20, hydromorphone 0.005-10, bupivacaine 0.01-30 mg/d.
select patient_key, idds_drug, initial_daily_dose_mg from {{ ref('cohort_idds') }}
where (idds_drug in ('morphine', 'morphine+bupivacaine') and initial_daily_dose_mg not between 0.02 and 20)
   or (idds_drug = 'hydromorphone' and initial_daily_dose_mg not between 0.005 and 10)
   or (idds_drug = 'bupivacaine' and initial_daily_dose_mg not between 0.01 and 30)
