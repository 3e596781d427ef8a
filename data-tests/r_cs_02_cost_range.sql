-- R-CS-02 (error part): total charge 50,000-500,000 CNY (catches 万元 entries).
select patient_key, total_charge_cny from {{ ref('cohort_idds') }}
where total_charge_cny not between 50000 and 500000
