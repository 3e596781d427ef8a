-- Complications of the index admission (events recorded on it, or dated within it when
-- recorded without an admission), and poor wound healing at any time.
with

index_implants as (
    select implant_id, patient_key, admission_id, admission_date, discharge_date
    from {{ ref('int_implants_indexed') }}
    where is_index_implant
),

events as (
    select * from {{ ref('stg_emr__adverse_events') }}
),

joined as (
    select
        index_implants.implant_id,
        events.event_type,
        events.admission_id = index_implants.admission_id
            or (events.admission_id is null
                and events.event_date between index_implants.admission_date and index_implants.discharge_date)
            as in_index_admission,
    from index_implants
    inner join events on events.patient_key = index_implants.patient_key
)

select
    index_implants.implant_id,
    coalesce(bool_or(in_index_admission and event_type = 'pdph'), false) as comp_pdph,
    coalesce(bool_or(in_index_admission and event_type = 'fever'), false) as comp_fever,
    coalesce(bool_or(in_index_admission and event_type in ('urinary_retention', 'constipation')), false)
        as comp_urinary_retention_constipation,
    coalesce(bool_or(in_index_admission and event_type = 'infection'), false) as comp_infection,
    coalesce(bool_or(event_type = 'poor_wound_healing'), false) as comp_poor_wound_healing,
from index_implants
left join joined on joined.implant_id = index_implants.implant_id
group by index_implants.implant_id
