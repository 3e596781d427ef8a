-- R-DT-05 (error): no follow-up call, last contact or explant after the data cut-off.
select followups.patient_key, followups.followup_id, followups.contact_date, false as in_cohort,
from {{ ref('stg_emr__followups') }} as followups
where followups.contact_date > (select max(data_cutoff_date) from {{ ref('int_followups_summarised') }})
union all
select patient_key, implant_id, coalesce(explant_date, last_contact_date), true,
from {{ ref('cohort_idds') }}
where last_contact_date > data_cutoff_date or explant_date > data_cutoff_date
