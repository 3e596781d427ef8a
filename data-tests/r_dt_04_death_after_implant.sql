-- R-DT-04 (error): implant < death <= cut-off; an in-hospital death dies on the discharge
-- date. Every death report is checked; in_cohort: the cohort's death date itself breaks it.
select followups.patient_key, followups.followup_id, followups.death_date, cohort.implant_date,
       coalesce(cohort.death_date <= cohort.implant_date or cohort.death_date > cohort.data_cutoff_date, false)
           as in_cohort,
from {{ ref('stg_emr__followups') }} as followups
inner join {{ ref('int_implants_indexed') }} as implants
    on implants.patient_key = followups.patient_key and implants.is_index_implant
left join {{ ref('cohort_idds') }} as cohort on cohort.patient_key = followups.patient_key
where followups.death_date <= implants.implant_date
   or followups.death_date > (select max(data_cutoff_date) from {{ ref('int_followups_summarised') }})
union all
select patient_key, null, death_date, implant_date, true,
from {{ ref('cohort_idds') }}
where in_hospital_death and death_date is distinct from discharge_date
