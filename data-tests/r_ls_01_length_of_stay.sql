-- R-LS-01 (error part): total stay >= 1 day, post-op stay >= 0, total >= post-op.
select patient_key, los_days, postop_los_days from {{ ref('cohort_idds') }}
where los_days < 1 or postop_los_days < 0 or los_days < postop_los_days
