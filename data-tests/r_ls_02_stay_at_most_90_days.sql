-- R-LS-02 (error part): total stay at most 90 days.
select patient_key, los_days from {{ ref('cohort_idds') }}
where los_days > 90
