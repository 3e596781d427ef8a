-- Every baseline variable of the study per index implant, from the concept models.
with

index_implants as (
    select * from {{ ref('int_implants_indexed') }} where is_index_implant
),

patients as (
    select * from {{ ref('stg_emr__patients') }}
),

levels as (
    select * from {{ ref('vertebral_levels') }}
)

select
    index_implants.implant_id,
    index_implants.patient_key,
    index_implants.implant_date,
    index_implants.admission_id,
    index_implants.admission_date,
    index_implants.discharge_date,
    index_implants.indication,
    date_sub('year', patients.birth_date, index_implants.implant_date) as age_years,
    patients.sex,
    patients.insurance_type,
    measurements.height_cm,
    measurements.weight_kg,
    measurements.bmi,
    cast(measurements.adl_barthel as integer) as adl_barthel,
    measurements.pressure_sore,
    measurements.skin_compromising_line,
    index_implants.arrival_mode in ('wheelchair', 'cart') as arrival_wheelchair_or_cart,
    diagnoses.cancer_icd10,
    diagnoses.cancer_site,
    diagnoses.cancer_dx_date,
    date_diff('day', diagnoses.cancer_dx_date, index_implants.implant_date) / 30.4375 as cancer_duration_months,
    diagnoses.metastasis_any,
    diagnoses.met_bone,
    diagnoses.met_liver,
    diagnoses.met_lung,
    diagnoses.met_other,
    diagnoses.pain_onset_date,
    date_diff('day', diagnoses.pain_onset_date, index_implants.implant_date) / 30.4375 as pain_duration_months,
    diagnoses.pain_onset_date < diagnoses.cancer_dx_date as pain_preceded_cancer,
    {% for site in ['lumbosacral', 'abdomen', 'back', 'lower_limb', 'perineum', 'chest', 'head_neck', 'upper_limb'] -%}
    measurements.pain_site_{{ site }},
    {% endfor -%}
    history.prior_surgery,
    history.prior_chemoradiotherapy,
    history.prior_immunotherapy,
    history.prior_pain_intervention,
    ome.baseline_ome_mg_per_day,
    ome.baseline_ome_nhc2018_mg_per_day,
    ome.baseline_ome_cdc2016_mg_per_day,
    ome.baseline_ome_mg_per_day > 0 as systemic_opioid_user,
    ome.nonstandard_opioid_present,
    adjuvants.n_adjuvant_drugs,
    cast(measurements.baseline_nrs as integer) as baseline_nrs,
    index_implants.implant_reason,
    itt.itt_count,
    itt.itt_drug,
    itt.itt_dose_mg,
    date_diff('second', index_implants.implant_started_at, index_implants.implant_ended_at) / 3600.0
        as surgery_duration_hours,
    index_implants.insertion_level,
    case
        when index_implants.insertion_level in ('L2-L3', 'L3-L4') then index_implants.insertion_level
        when index_implants.insertion_level is not null then 'other'
    end as insertion_level_group,
    index_implants.catheter_tip_level,
    case
        when tip.level_order is null then null
        when tip.level_order < (select level_order from levels where level = 'T6') then 'T1_T5'
        when tip.level_order < (select level_order from levels where level = 'T10') then 'T6_T9'
        else 'T10_or_lower'
    end as tip_group,
    index_implants.catheter_direction = 'cephalad' as catheter_cephalad,
    index_implants.device_model,
    pump.idds_drug,
    pump.initial_daily_dose_mg,
    date_diff('day', index_implants.admission_date, index_implants.discharge_date) as los_days,
    date_diff('day', index_implants.implant_date, index_implants.discharge_date) as postop_los_days,
    index_implants.total_charge_cny,
    index_implants.self_pay_cny,
from index_implants
left join patients on patients.patient_key = index_implants.patient_key
left join {{ ref('int_baseline_measurements_pivoted') }} as measurements
    on measurements.implant_id = index_implants.implant_id
left join {{ ref('int_diagnoses_classified') }} as diagnoses on diagnoses.implant_id = index_implants.implant_id
left join {{ ref('int_treatment_history_flagged') }} as history on history.implant_id = index_implants.implant_id
left join {{ ref('int_baseline_ome_computed') }} as ome on ome.implant_id = index_implants.implant_id
left join {{ ref('int_adjuvants_counted') }} as adjuvants on adjuvants.implant_id = index_implants.implant_id
left join {{ ref('int_itt_trials_windowed') }} as itt on itt.implant_id = index_implants.implant_id
left join {{ ref('int_pump_programs_initial') }} as pump on pump.implant_id = index_implants.implant_id
left join levels as tip on tip.level = index_implants.catheter_tip_level
