-- R-CS-01 (error): total charge > 0 and 0 <= self-pay <= total.
select patient_key, total_charge_cny, self_pay_cny from {{ ref('cohort_idds') }}
where total_charge_cny <= 0 or self_pay_cny < 0 or self_pay_cny > total_charge_cny
