-- Follow-up status and overall survival from the index implant.
with

index_implants as (
    select * from {{ ref('int_implants_indexed') }} where is_index_implant
),

followup as (
    select * from {{ ref('int_followups_summarised') }}
),

status as (
    select
        index_implants.patient_key,
        index_implants.implant_date,
        index_implants.discharge_date,
        index_implants.explant_date,
        coalesce(index_implants.discharge_status = 'dead', false) as in_hospital_death,
        index_implants.explant_date is not null as explanted,
        case
            when index_implants.discharge_status = 'dead' then 'periop_death'
            when index_implants.explant_date is not null then 'explanted'
            when followup.n_reached_followups > 0 then 'followed'
            else 'lost_or_refused'
        end as followup_status,
        followup.followup_nrs,
        followup.satisfied,
        followup.systemic_opioid_after,
        case
            when index_implants.discharge_status = 'dead' then index_implants.discharge_date
            else followup.reported_death_date
        end as death_date,
        case
            when followup.last_alive_contact_date is null then index_implants.discharge_date
            else least(followup.last_alive_contact_date, followup.data_cutoff_date)
        end as last_contact_date,
        followup.data_cutoff_date,
    from index_implants
    left join followup on followup.patient_key = index_implants.patient_key
),

survival as (
    select
        *,
        case when death_date is not null and death_date <= data_cutoff_date then 1 else 0 end as os_event,
        date_diff(
            'day',
            implant_date,
            least(
                case when death_date is not null and death_date <= data_cutoff_date
                     then death_date else last_contact_date end,
                data_cutoff_date
            )
        ) as os_days,
    from status
)

select
    *,
    os_days / 30.4375 as os_months,
from survival
