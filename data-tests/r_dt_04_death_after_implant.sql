-- R-DT-04 (error): implant < death <= cut-off; an in-hospital death dies on the discharge date.
select patient_key, implant_date, death_date, data_cutoff_date, discharge_date from {{ ref('cohort_idds') }}
where death_date <= implant_date
   or death_date > data_cutoff_date
   or (in_hospital_death and death_date is distinct from discharge_date)
