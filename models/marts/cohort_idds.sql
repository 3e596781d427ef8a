-- One row per included patient: the study's analytic cohort, every variable of the
-- study definition (docs/cohort_variables.md) with its unit in the name.
with

screened as (
    select * from {{ ref('int_patients_screened') }} where is_included
),

survival as (
    select * from {{ ref('int_survival_computed') }}
),

complications as (
    select * from {{ ref('int_complications_flagged') }}
)

select
    screened.patient_key,
    screened.implant_id,
    screened.implant_date,
    cast(year(screened.implant_date) as integer) as implant_year,
    screened.admission_date,
    screened.discharge_date,
    cast(screened.age_years as integer) as age_years,
    screened.sex,
    screened.insurance_type,
    screened.height_cm,
    screened.weight_kg,
    screened.bmi,
    screened.adl_barthel,
    screened.pressure_sore,
    screened.skin_compromising_line,
    screened.arrival_wheelchair_or_cart,
    screened.cancer_site,
    screened.cancer_icd10,
    screened.cancer_dx_date,
    screened.cancer_duration_months,
    screened.metastasis_any,
    screened.met_bone,
    screened.met_liver,
    screened.met_lung,
    screened.met_other,
    screened.pain_onset_date,
    screened.pain_duration_months,
    screened.pain_preceded_cancer,
    {% for site in ['lumbosacral', 'abdomen', 'back', 'lower_limb', 'perineum', 'chest', 'head_neck', 'upper_limb'] -%}
    screened.pain_site_{{ site }},
    {% endfor -%}
    screened.prior_surgery,
    screened.prior_chemoradiotherapy,
    screened.prior_immunotherapy,
    screened.prior_pain_intervention,
    screened.baseline_ome_mg_per_day,
    screened.baseline_ome_nhc2018_mg_per_day,
    screened.baseline_ome_cdc2016_mg_per_day,
    screened.systemic_opioid_user,
    screened.nonstandard_opioid_present,
    cast(screened.n_adjuvant_drugs as integer) as n_adjuvant_drugs,
    screened.baseline_nrs,
    screened.implant_reason,
    cast(screened.itt_count as integer) as itt_count,
    screened.itt_drug,
    screened.itt_dose_mg,
    screened.surgery_duration_hours,
    screened.insertion_level,
    screened.insertion_level_group,
    screened.catheter_tip_level,
    screened.tip_group,
    screened.catheter_cephalad,
    screened.device_model,
    screened.idds_drug,
    screened.initial_daily_dose_mg,
    cast(screened.los_days as integer) as los_days,
    cast(screened.postop_los_days as integer) as postop_los_days,
    screened.total_charge_cny,
    screened.self_pay_cny,
    complications.comp_pdph,
    complications.comp_fever,
    complications.comp_urinary_retention_constipation,
    complications.comp_infection,
    complications.comp_poor_wound_healing,
    survival.in_hospital_death,
    survival.explanted,
    survival.explant_date,
    survival.followup_status,
    survival.followup_nrs,
    survival.satisfied,
    survival.systemic_opioid_after,
    survival.death_date,
    survival.last_contact_date,
    survival.data_cutoff_date,
    cast(survival.os_days as integer) as os_days,
    cast(survival.os_months as double) as os_months,
    cast(survival.os_event as integer) as os_event,
from screened
inner join survival on survival.patient_key = screened.patient_key
left join complications on complications.implant_id = screened.implant_id
