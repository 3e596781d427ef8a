-- R-DM-03 (error / warning): height 130-200 cm (a bare 1.0-2.5 is metres: converted, reported);
-- weight 25-150 kg, and a weight that is plausible only as 斤 (BMI > 40 as kg, 12-40 halved).
-- in_cohort: the cohort's own height or weight is out of range.
with measurements as (select * from {{ ref('stg_emr__measurements') }} where item in ('height', 'weight')),
heights as (
    select patient_key, median(value_numeric) as height_cm
    from measurements where item = 'height' and value_numeric between 130 and 200 group by patient_key
),
flagged as (
    select measurements.patient_key, measurements.measurement_id, measurements.item,
           measurements.value_as_delivered, measurements.value_numeric, measurements.admission_id,
    from measurements
    left join heights on heights.patient_key = measurements.patient_key
    where (item = 'height' and (value_numeric not between 130 and 200
                                or (measurements.unit is null and idds_number(value_as_delivered) between 1.0 and 2.5)))
       or (item = 'weight' and (value_numeric not between 25 and 150
           or (value_numeric between 50 and 300 and heights.height_cm between 130 and 200
               and value_numeric / (heights.height_cm / 100) ^ 2 > 40
               and (value_numeric / 2) / (heights.height_cm / 100) ^ 2 between 12 and 40)))
)
select flagged.*, false as in_cohort from flagged
union all
select patient_key, null, 'height/weight', null, coalesce(height_cm, weight_kg), null, true
from {{ ref('cohort_idds') }}
where height_cm not between 130 and 200 or weight_kg not between 25 and 150
