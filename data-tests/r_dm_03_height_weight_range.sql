-- R-DM-03 (error part): height 130-200 cm, weight 25-150 kg after unit conversion.
select patient_key, height_cm, weight_kg from {{ ref('cohort_idds') }}
where height_cm not between 130 and 200 or weight_kg not between 25 and 150
