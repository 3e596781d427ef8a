-- R-FU-01 (error): only followed patients carry follow-up NRS, satisfaction and opioid use after.
select patient_key, followup_status from {{ ref('cohort_idds') }}
where followup_status <> 'followed'
  and (followup_nrs is not null or satisfied is not null or systemic_opioid_after is not null)
