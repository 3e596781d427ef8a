-- R-PN-01 (error / warning): NRS is an integer 0-10, in every assessment and follow-up.
select patient_key, measurement_id as record_id, value_as_delivered, false as in_cohort,
from {{ ref('stg_emr__measurements') }}
where item = 'nrs' and (value_numeric not between 0 and 10 or value_numeric <> round(value_numeric))
union all
select patient_key, implant_id, cast(coalesce(baseline_nrs, followup_nrs) as varchar), true
from {{ ref('cohort_idds') }}
where baseline_nrs not between 0 and 10 or followup_nrs not between 0 and 10
