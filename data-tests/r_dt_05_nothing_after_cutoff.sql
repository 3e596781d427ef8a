-- R-DT-05 (error): last contact and explant never after the data cut-off.
select patient_key, last_contact_date, explant_date, data_cutoff_date from {{ ref('cohort_idds') }}
where last_contact_date > data_cutoff_date or explant_date > data_cutoff_date
