-- R-OP-03 (warning): a transdermal patch recorded as mg content is mapped to μg/h by product;
-- an unknown product cannot be (in_cohort when it falls in a cohort patient's baseline window).
select orders.patient_key, orders.order_id, orders.drug_name, orders.dose, orders.dose_unit,
       orders.dose_in_basis is null and orders.implant_id in (select implant_id from {{ ref('cohort_idds') }})
           and (orders.is_baseline_standing or orders.is_baseline_one_off) as in_cohort,
from {{ ref('int_opioid_orders_converted') }} as orders
where orders.dose_basis = 'ug_per_h' and orders.dose_unit = 'mg'
