-- R-DT-06 (error): an explant is dated after its implant.
select patient_key, implant_date, explant_date from {{ ref('cohort_idds') }}
where explant_date <= implant_date
