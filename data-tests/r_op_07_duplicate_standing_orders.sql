-- R-OP-07 (warning): an identical duplicate standing opioid order; it is counted once.
select orders.patient_key, orders.order_id, orders.drug_name, orders.started_at, false as in_cohort,
from {{ ref('stg_emr__medication_orders') }} as orders
inner join {{ ref('int_drug_names_mapped') }} as drugs on drugs.drug_name = orders.drug_name
where drugs.drug_class = 'opioid' and orders.order_kind = 'long_term'
qualify row_number() over (
    partition by orders.patient_key, orders.admission_id, orders.drug_name, orders.dose, orders.dose_unit,
        orders.route, orders.frequency, orders.started_at, orders.ended_at
    order by orders.order_id) > 1
