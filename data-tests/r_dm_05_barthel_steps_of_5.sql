-- R-DM-05 (error / warning): Barthel ADL is 0-100 and a multiple of 5.
select patient_key, measurement_id as record_id, value_as_delivered, false as in_cohort,
from {{ ref('stg_emr__measurements') }}
where item = 'adl' and (value_numeric not between 0 and 100 or value_numeric % 5 <> 0)
union all
select patient_key, implant_id, cast(adl_barthel as varchar), true
from {{ ref('cohort_idds') }}
where adl_barthel not between 0 and 100
