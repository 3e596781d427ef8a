-- Adjuvant analgesic classes (NSAID, anticonvulsant, antidepressant) ordered in the
-- first 24 h of the index admission.
with

index_admissions as (
    select implant_id, patient_key, admission_id, admitted_at
    from {{ ref('int_implants_indexed') }}
    where is_index_implant
),

orders as (
    select * from {{ ref('stg_emr__medication_orders') }}
),

drugs as (
    select * from {{ ref('int_drug_names_mapped') }}
)

select
    index_admissions.implant_id,
    count(distinct drugs.drug_class) filter (
        where drugs.drug_class in ('nsaid', 'anticonvulsant', 'antidepressant')
            and orders.started_at >= index_admissions.admitted_at
            and orders.started_at < index_admissions.admitted_at + interval 24 hour
    ) as n_adjuvant_drugs,
from index_admissions
left join orders
    on orders.admission_id = index_admissions.admission_id
    and orders.patient_key = index_admissions.patient_key
left join drugs on drugs.drug_name = orders.drug_name
group by index_admissions.implant_id
