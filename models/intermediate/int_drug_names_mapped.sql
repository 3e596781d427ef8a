-- Each distinct drug name ordered, mapped to its ingredient and class by the longest
-- keyword of the drug dictionary it contains (氢吗啡酮 before 吗啡, 舒芬太尼 before 芬太尼).
with

names as (
    select distinct drug_name from {{ ref('stg_emr__medication_orders') }} where drug_name is not null
),

dictionary as (
    select * from {{ ref('drug_dictionary') }}
)

select
    names.drug_name,
    dictionary.ingredient,
    dictionary.drug_class,
from names
left join dictionary
    on contains(lower(names.drug_name), lower(dictionary.keyword))
qualify row_number() over (
    partition by names.drug_name order by length(dictionary.keyword) desc nulls last
) = 1
