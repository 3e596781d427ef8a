-- R-ID-03 (error): a pump replacement or revision (更换 / 翻修) is never an index implant:
-- implants recorded as first implants whose procedure names a replacement or revision.
select implants.patient_key, implants.implant_id, procedures.procedure_name,
       implants.implant_id in (select implant_id from {{ ref('cohort_idds') }}) as in_cohort,
from {{ ref('stg_emr__idds_implants') }} as implants
inner join {{ ref('stg_emr__procedures') }} as procedures on procedures.procedure_id = implants.procedure_id
where not coalesce(implants.is_replacement, false)
  and regexp_matches(lower(coalesce(procedures.procedure_name, '')), '更换|翻修|revision|replace')
