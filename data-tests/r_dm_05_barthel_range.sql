-- R-DM-05 (error part): Barthel ADL 0-100.
select patient_key, adl_barthel from {{ ref('cohort_idds') }}
where adl_barthel not between 0 and 100
