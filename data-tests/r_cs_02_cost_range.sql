-- R-CS-02 (error part): an implant admission costs 50,000-500,000 CNY (catches 万元 entries).
select admissions.patient_key, admissions.admission_id, admissions.total_charge_cny,
       admissions.admission_id in (select admission_id from {{ ref('int_patients_screened') }} where is_included) as in_cohort,
from {{ ref('stg_emr__admissions') }} as admissions
where admissions.admission_id in (select admission_id from {{ ref('int_implants_indexed') }})
  and admissions.total_charge_cny not between 50000 and 500000
