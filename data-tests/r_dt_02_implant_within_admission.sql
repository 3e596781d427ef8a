-- R-DT-02 (error): admission <= implant <= discharge: an implant whose admission was
-- discharged before it (the admission ending within the week before the implant).
with implants as (
    select * from {{ ref('int_implants_indexed') }} where admission_id is null and implant_date is not null
)
select admissions.patient_key, admissions.admission_id, implants.implant_id, implants.implant_date,
       admissions.discharge_date, false as in_cohort,
from implants
inner join {{ ref('stg_emr__admissions') }} as admissions
    on admissions.patient_key = implants.patient_key
    and admissions.admission_date <= implants.implant_date
    and admissions.discharge_date < implants.implant_date
    and admissions.discharge_date >= implants.implant_date - interval 7 day
