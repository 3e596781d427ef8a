-- R-CS-01 (error): total charge > 0 and 0 <= self-pay <= total, on every admission;
-- in_cohort: the admission is a cohort patient's index admission.
select admissions.patient_key, admissions.admission_id, admissions.total_charge_cny, admissions.self_pay_cny,
       admissions.admission_id in (select admission_id from {{ ref('int_patients_screened') }} where is_included) as in_cohort,
from {{ ref('stg_emr__admissions') }} as admissions
where admissions.total_charge_cny <= 0 or admissions.self_pay_cny < 0
   or admissions.self_pay_cny > admissions.total_charge_cny
