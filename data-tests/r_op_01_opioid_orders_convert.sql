-- R-OP-01 (error): every baseline opioid order of a cohort patient converts to OME.
select orders.patient_key, orders.order_id, orders.drug_name, orders.route, orders.dose_unit
from {{ ref('int_opioid_orders_converted') }} as orders
inner join {{ ref('cohort_idds') }} as cohort on cohort.implant_id = orders.implant_id
where (orders.is_baseline_standing or orders.is_baseline_one_off)
  and orders.drug_class = 'opioid' and not orders.is_convertible
