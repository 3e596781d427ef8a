-- Baseline oral morphine equivalent per index implant (mg/day), under the pipeline's
-- default factors and the two sensitivity profiles.
with

index_implants as (
    select implant_id from {{ ref('int_implants_indexed') }} where is_index_implant
),

orders as (
    select * from {{ ref('int_opioid_orders_converted') }}
    where is_baseline_standing or is_baseline_one_off
),

summed as (
    select
        implant_id,
        sum(ome_mg_per_day) as ome_mg_per_day,
        sum(ome_nhc2018_mg_per_day) as ome_nhc2018_mg_per_day,
        sum(ome_cdc2016_mg_per_day) as ome_cdc2016_mg_per_day,
        count(*) filter (where drug_class = 'opioid' and not is_convertible) as n_unconvertible_orders,
        count(*) filter (where drug_class = 'opioid_nonstandard') > 0 as nonstandard_opioid_present,
    from orders
    group by implant_id
)

select
    index_implants.implant_id,
    round(coalesce(summed.ome_mg_per_day, 0), 6) as baseline_ome_mg_per_day,
    round(coalesce(summed.ome_nhc2018_mg_per_day, 0), 6) as baseline_ome_nhc2018_mg_per_day,
    round(coalesce(summed.ome_cdc2016_mg_per_day, 0), 6) as baseline_ome_cdc2016_mg_per_day,
    coalesce(summed.n_unconvertible_orders, 0) as n_unconvertible_opioid_orders,
    coalesce(summed.nonstandard_opioid_present, false) as nonstandard_opioid_present,
from index_implants
left join summed on summed.implant_id = index_implants.implant_id
