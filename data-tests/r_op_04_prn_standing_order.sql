-- R-OP-04 (warning): a long-term PRN opioid order has no administration record; it
-- contributes nothing to the baseline OME.
select orders.patient_key, orders.order_id, orders.drug_name, orders.frequency, false as in_cohort,
from {{ ref('int_opioid_orders_converted') }} as orders
where orders.order_kind = 'long_term' and orders.frequency = 'prn'
