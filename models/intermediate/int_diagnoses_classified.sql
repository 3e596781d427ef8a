-- Tumour and pain history per index implant: the earliest primary malignancy on or
-- before the index discharge and its site bucket, distant metastases (C78-C79; C77
-- regional nodes excluded) on or before discharge, and the earliest pain diagnosis.
with

index_implants as (
    select implant_id, patient_key, coalesce(discharge_date, implant_date) as discharge_date
    from {{ ref('int_implants_indexed') }}
    where is_index_implant
),

diagnoses as (
    select * from {{ ref('stg_emr__diagnoses') }} where icd10_code is not null
),

sites as (
    select * from {{ ref('icd10_sites') }}
),

patient_dx as (
    select
        index_implants.implant_id,
        index_implants.discharge_date,
        diagnoses.diagnosis_date,
        diagnoses.icd10_code,
        left(diagnoses.icd10_code, 3) as icd10_3,
    from index_implants
    inner join diagnoses on diagnoses.patient_key = index_implants.patient_key
),

primaries as (
    select
        implant_id,
        arg_min(icd10_code, strftime(diagnosis_date, '%Y%m%d') || icd10_code) as cancer_icd10,
        min(diagnosis_date) as cancer_dx_date,
    from patient_dx
    where diagnosis_date <= discharge_date and {{ is_primary_malignancy('icd10_code') }}
    group by implant_id
),

primary_site as (
    select
        primaries.*,
        coalesce(sites.site, 'other') as cancer_site,
    from primaries
    left join sites
        on sites.kind = 'primary'
        and left(primaries.cancer_icd10, 3) between sites.code_from and sites.code_to
),

metastases as (
    select
        implant_id,
        true as metastasis_any,
        bool_or(icd10_code = 'C79.5') as met_bone,
        bool_or(icd10_code = 'C78.7') as met_liver,
        bool_or(icd10_code = 'C78.0') as met_lung,
        bool_or(icd10_code not in ('C79.5', 'C78.7', 'C78.0')) as met_other,
    from patient_dx
    where diagnosis_date <= discharge_date and icd10_3 in ('C78', 'C79')
    group by implant_id
),

pain as (
    select
        implant_id,
        min(diagnosis_date) as pain_onset_date,
    from patient_dx
    where regexp_matches(icd10_code, '^(G89|R52|M54|R10)')
    group by implant_id
)

select
    index_implants.implant_id,
    primary_site.cancer_icd10,
    primary_site.cancer_site,
    primary_site.cancer_dx_date,
    coalesce(metastases.metastasis_any, false) as metastasis_any,
    coalesce(metastases.met_bone, false) as met_bone,
    coalesce(metastases.met_liver, false) as met_liver,
    coalesce(metastases.met_lung, false) as met_lung,
    coalesce(metastases.met_other, false) as met_other,
    pain.pain_onset_date,
from index_implants
left join primary_site on primary_site.implant_id = index_implants.implant_id
left join metastases on metastases.implant_id = index_implants.implant_id
left join pain on pain.implant_id = index_implants.implant_id
