-- R-IT-02 (error part): trial bolus morphine 0.02-2 mg, hydromorphone 0.005-0.5 mg, bupivacaine 0.1-5 mg.
select patient_key, itt_drug, itt_dose_mg from {{ ref('cohort_idds') }}
where (itt_drug = 'morphine' and itt_dose_mg not between 0.02 and 2)
   or (itt_drug = 'hydromorphone' and itt_dose_mg not between 0.005 and 0.5)
   or (itt_drug = 'bupivacaine' and itt_dose_mg not between 0.1 and 5)
