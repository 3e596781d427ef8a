-- R-OR-02 (error): the insertion level normalises to an adjacent interspace from T10-T11 to
-- L5-S1. Also reported: levels written with a separator outside the contract's forms (L2~3),
-- which were normalised (in_cohort only when the cohort's level itself is invalid).
with levels as (select * from {{ ref('vertebral_levels') }}),
implants as (select * from {{ ref('stg_emr__idds_implants') }} where insertion_level_as_delivered is not null),
checked as (
    select implants.patient_key, implants.implant_id, implants.insertion_level_as_delivered,
           implants.insertion_level,
           lower_level.level_order is distinct from upper_level.level_order + 1
               or upper_level.level_order < (select level_order from levels where level = 'T10')
               or lower_level.level_order > (select level_order from levels where level = 'S1') as is_invalid,
           regexp_matches(implants.insertion_level_as_delivered, '[~～至_]') as is_nonstandard_notation,
    from implants
    left join levels as upper_level on upper_level.level = split_part(implants.insertion_level, '-', 1)
    left join levels as lower_level on lower_level.level = split_part(implants.insertion_level, '-', 2)
)
select patient_key, implant_id, insertion_level_as_delivered, insertion_level,
       is_invalid and implant_id in (select implant_id from {{ ref('cohort_idds') }}) as in_cohort,
from checked
where is_invalid or is_nonstandard_notation
