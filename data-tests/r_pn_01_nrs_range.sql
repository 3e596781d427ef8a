-- R-PN-01 (error part): NRS 0-10 at baseline and at follow-up.
select patient_key, baseline_nrs, followup_nrs from {{ ref('cohort_idds') }}
where baseline_nrs not between 0 and 10 or followup_nrs not between 0 and 10
