-- Systemic opioid orders of each index admission, each converted to its contribution to
-- the baseline OME (mg/day of oral morphine):
--   long-term orders active in the first 24 h: daily amount x factor
--     (patch: ug/h x factor; infusion: rate x 24 x factor; scheduled: dose x doses/day x factor;
--      a long-term prn order contributes nothing by itself)
--   temporary doses in the first 72 h: dose x factor, summed and divided by 3.
-- Intrathecal orders never count. Identical duplicate standing orders count once.
with

index_admissions as (
    select implant_id, patient_key, admission_id, admitted_at
    from {{ ref('int_implants_indexed') }}
    where is_index_implant and admission_id is not null
),

orders as (
    select * from {{ ref('stg_emr__medication_orders') }}
),

drugs as (
    select * from {{ ref('int_drug_names_mapped') }}
),

factors as (
    select * from {{ ref('opioid_conversion_factors') }}
),

patches as (
    select * from {{ ref('patch_content_rates') }}
),

frequencies as (
    select * from {{ ref('frequency_per_day') }}
),

opioid_orders as (
    select
        index_admissions.implant_id,
        index_admissions.admitted_at,
        orders.*,
        drugs.ingredient,
        drugs.drug_class,
    from orders
    inner join index_admissions
        on index_admissions.admission_id = orders.admission_id
        and index_admissions.patient_key = orders.patient_key
    inner join drugs
        on drugs.drug_name = orders.drug_name
    where drugs.drug_class in ('opioid', 'opioid_nonstandard')
        and orders.route is distinct from 'IT'
    -- an identical duplicate standing order counts once (one-off doses are each given)
    qualify orders.order_kind is distinct from 'long_term' or row_number() over (
        partition by orders.patient_key, orders.admission_id, orders.drug_name, orders.dose,
            orders.dose_unit, orders.route, orders.frequency, orders.order_kind,
            orders.started_at, orders.ended_at
        order by orders.order_id
    ) = 1
),

windowed as (
    select
        *,
        order_kind = 'long_term'
            and started_at < admitted_at + interval 24 hour
            and (ended_at is null or ended_at > admitted_at) as is_baseline_standing,
        order_kind = 'temporary'
            and started_at >= admitted_at
            and started_at < admitted_at + interval 72 hour as is_baseline_one_off,
    from opioid_orders
),

with_factor as (
    select
        windowed.*,
        factors.dose_basis,
        factors.factor,
        factors.factor_nhc2018,
        factors.factor_cdc2016,
        frequencies.doses_per_day,
        patches.rate_ug_per_h as patch_rate_from_content,
    from windowed
    left join factors
        on factors.ingredient = windowed.ingredient and factors.route = windowed.route
    left join frequencies
        on frequencies.frequency = windowed.frequency
    left join patches
        on patches.ingredient = windowed.ingredient
        and windowed.dose_unit = 'mg'
        and abs(patches.content_mg - windowed.dose) < 1e-9
),

amounts as (
    select
        *,
        -- the dose expressed in the unit the factor applies to
        case
            when dose_basis = 'ug_per_h' then
                case dose_unit
                    when 'ug/h' then dose
                    when 'mg/h' then dose * 1000
                    when 'mg' then patch_rate_from_content
                end
            when dose_basis = 'ug' then
                case dose_unit
                    when 'ug' then dose when 'ug/h' then dose
                    when 'mg' then dose * 1000 when 'mg/h' then dose * 1000 when 'g' then dose * 1e6
                end
            else
                case dose_unit
                    when 'mg' then dose when 'mg/h' then dose
                    when 'g' then dose * 1000
                    when 'ug' then dose / 1000 when 'ug/h' then dose / 1000
                end
        end as dose_in_basis,
        dose_unit in ('mg/h', 'ug/h') and dose_basis <> 'ug_per_h' or frequency = 'continuous'
            as is_infusion,
    from with_factor
),

converted as (
    select
        *,
        case
            when is_baseline_standing then
                case
                    when dose_basis = 'ug_per_h' then dose_in_basis
                    when is_infusion then dose_in_basis * 24
                    else dose_in_basis * coalesce(doses_per_day, 0)
                end
            when is_baseline_one_off then dose_in_basis / 3
            else 0
        end as daily_amount_in_basis,
    from amounts
)

select
    order_id,
    implant_id,
    patient_key,
    admission_id,
    drug_name,
    ingredient,
    drug_class,
    route,
    dose,
    dose_unit,
    frequency,
    order_kind,
    started_at,
    ended_at,
    is_baseline_standing,
    is_baseline_one_off,
    dose_basis,
    factor,
    dose_in_basis,
    drug_class = 'opioid' and factor is not null and dose_in_basis is not null as is_convertible,
    case when drug_class = 'opioid' then daily_amount_in_basis * factor end as ome_mg_per_day,
    case when drug_class = 'opioid' then daily_amount_in_basis * factor_nhc2018 end as ome_nhc2018_mg_per_day,
    case when drug_class = 'opioid' then daily_amount_in_basis * factor_cdc2016 end as ome_cdc2016_mg_per_day,
from converted
