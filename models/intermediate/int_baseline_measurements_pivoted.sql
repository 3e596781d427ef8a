-- Baseline measurements of the index admission, one row per index implant:
-- height and weight at or before the implant, ADL and NRS strictly before it (the last
-- value wins), pressure sores, indwelling lines and pain sites at any time of the stay.
with

index_implants as (
    select implant_id, patient_key, admission_id, implant_started_at
    from {{ ref('int_implants_indexed') }}
    where is_index_implant
),

measurements as (
    select * from {{ ref('stg_emr__measurements') }}
),

joined as (
    select
        index_implants.implant_id,
        index_implants.implant_started_at,
        measurements.*,
    from index_implants
    inner join measurements
        on measurements.admission_id = index_implants.admission_id
        and measurements.patient_key = index_implants.patient_key
),

pivoted as (
    select
        implant_id,
        arg_max(value_numeric, measured_at) filter (
            where item = 'height' and measured_at <= implant_started_at) as height_cm,
        arg_max(value_numeric, measured_at) filter (
            where item = 'weight' and measured_at <= implant_started_at) as weight_kg,
        arg_max(value_numeric, measured_at) filter (
            where item = 'adl' and measured_at < implant_started_at) as adl_barthel,
        arg_max(value_numeric, measured_at) filter (
            where item = 'nrs' and measured_at < implant_started_at) as baseline_nrs,
        coalesce(bool_or(item = 'pressure_sore' and yes_no = 'yes'), false) as pressure_sore,
        coalesce(bool_or(item = 'indwelling_line'), false) as skin_compromising_line,
        {% for site in ['lumbosacral', 'abdomen', 'back', 'lower_limb', 'perineum', 'chest', 'head_neck', 'upper_limb'] -%}
        coalesce(bool_or(item = 'pain_site' and pain_site = '{{ site }}'), false) as pain_site_{{ site }},
        {% endfor %}
    from joined
    group by implant_id
)

select
    index_implants.implant_id,
    pivoted.* exclude (implant_id),
    -- BMI rounded half up to one decimal
    floor(pivoted.weight_kg * 100000.0 / (pivoted.height_cm * pivoted.height_cm) + 0.5 + 1e-9) / 10
        as bmi,
from index_implants
left join pivoted on pivoted.implant_id = index_implants.implant_id
