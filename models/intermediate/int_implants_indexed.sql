-- Candidate implants (idds_implants joined to their procedure) with the index implant
-- marked: a patient's first implant that is not a replacement. Index admission = the
-- admission of the patient whose admit..discharge interval contains the implant date.
with

implants as (
    select * from {{ ref('stg_emr__idds_implants') }}
),

procedures as (
    select * from {{ ref('stg_emr__procedures') }}
),

admissions as (
    select * from {{ ref('stg_emr__admissions') }}
),

candidates as (
    select
        implants.*,
        procedures.started_at as implant_started_at,
        procedures.ended_at as implant_ended_at,
        cast(procedures.started_at as date) as implant_date,
    from implants
    left join procedures
        on procedures.procedure_id = implants.procedure_id
),

ranked as (
    select
        *,
        case
            when not coalesce(is_replacement, false) and implant_date is not null
                then row_number() over (
                    partition by patient_key, (not coalesce(is_replacement, false) and implant_date is not null)
                    order by implant_started_at, implant_id
                )
        end as first_implant_rank,
    from candidates
),

with_admission as (
    select
        ranked.*,
        ranked.first_implant_rank = 1 as is_index_implant,
        admissions.admission_id,
        admissions.admitted_at,
        admissions.discharged_at,
        admissions.admission_date,
        admissions.discharge_date,
        admissions.discharge_status,
        admissions.arrival_mode,
        admissions.total_charge_cny,
        admissions.self_pay_cny,
    from ranked
    left join admissions
        on admissions.patient_key = ranked.patient_key
        and ranked.implant_date >= admissions.admission_date
        and ranked.implant_date <= coalesce(admissions.discharge_date, ranked.implant_date)
    qualify row_number() over (
        partition by ranked.implant_id order by admissions.admission_date desc nulls last
    ) = 1
)

select * from with_admission
