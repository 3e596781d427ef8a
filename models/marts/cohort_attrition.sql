-- The attrition flow: each step, its rule, patients remaining and excluded, and why.
with

screened as (
    select * from {{ ref('int_patients_screened') }}
),

steps as (
    select * from (values
        (0, 'extract', 'every patient in the extract', null),
        (1, 'no_implant', 'has an IDDS implant record', 'no_implant'),
        (2, 'no_first_implant', 'has a first (non-replacement) implant', 'no_first_implant'),
        (3, 'implant_outside_window', 'index implant dated {{ var("cohort_start") }} to {{ var("cohort_end") }}', 'implant_outside_window'),
        (4, 'nonmalignant_pain', 'cancer-pain indication and a primary malignancy on or before discharge', 'nonmalignant_pain'),
        (5, 'missing_data', 'every required baseline variable present', 'missing_data')
    ) as t(step_order, step, rule, exclusion_step)
),

reasons as (
    select exclusion_step, exclusion_reason, count(*) as n
    from screened
    where exclusion_reason is not null
    group by all
),

counted as (
    select
        steps.step_order,
        steps.step,
        steps.rule,
        coalesce(sum(reasons.n), 0) as n_excluded,
        string_agg(reasons.exclusion_reason || ' (' || reasons.n || ')', ', ' order by reasons.exclusion_reason)
            as reasons,
    from steps
    left join reasons on reasons.exclusion_step = steps.exclusion_step
    group by all
),

with_remaining as (
    select
        *,
        (select count(*) from screened)
            - sum(n_excluded) over (order by step_order rows unbounded preceding) as n_remaining,
    from counted
)

select
    cast(step_order as integer) as step_order,
    step,
    rule,
    cast(n_remaining as bigint) as n_remaining,
    cast(n_excluded as bigint) as n_excluded,
    reasons as reason,
from with_remaining
order by step_order
