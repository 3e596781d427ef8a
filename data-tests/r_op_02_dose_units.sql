-- R-OP-02 (warning): a hydromorphone parenteral single dose above 50 mg suggests μg written
-- as mg; dose units outside mg / g / μg / μg/h / mg/h.
select orders.patient_key, orders.order_id, orders.drug_name, orders.dose, orders.dose_unit, false as in_cohort,
from {{ ref('stg_emr__medication_orders') }} as orders
inner join {{ ref('int_drug_names_mapped') }} as drugs on drugs.drug_name = orders.drug_name
where drugs.drug_class = 'opioid'
  and ((drugs.ingredient = 'hydromorphone' and orders.route in ('IV', 'SC', 'IM')
        and orders.dose_unit in ('mg', 'g') and orders.dose * (case orders.dose_unit when 'g' then 1000 else 1 end) > 50)
       or orders.dose_unit is null)
