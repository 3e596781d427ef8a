-- R-LS-01 (error part): total stay >= 1 day, post-op stay >= 0, total >= post-op.
-- An admission that ends before it starts (e.g. day and month swapped), or that starts
-- after the implant it belongs to (post-op stay longer than the whole stay).
with implants as (
    select * from {{ ref('int_implants_indexed') }} where admission_id is null and implant_date is not null
)
select admissions.patient_key, admissions.admission_id, admissions.admission_date, admissions.discharge_date,
       admissions.admission_id in (select admission_id from {{ ref('int_patients_screened') }} where is_included) as in_cohort,
from {{ ref('stg_emr__admissions') }} as admissions
where admissions.discharge_date < admissions.admission_date
union all
select admissions.patient_key, admissions.admission_id, admissions.admission_date, admissions.discharge_date,
       false as in_cohort,
from implants
inner join {{ ref('stg_emr__admissions') }} as admissions
    on admissions.patient_key = implants.patient_key
    and admissions.admission_date > implants.implant_date
    and admissions.admission_date <= implants.implant_date + interval 7 day
    and admissions.discharge_date >= admissions.admission_date
