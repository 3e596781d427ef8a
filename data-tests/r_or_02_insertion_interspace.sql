-- R-OR-02 (error): the insertion level is an adjacent interspace from T10-T11 to L5-S1.
with levels as (select * from {{ ref('vertebral_levels') }})
select cohort.patient_key, cohort.insertion_level from {{ ref('cohort_idds') }} as cohort
left join levels as upper_level on upper_level.level = split_part(cohort.insertion_level, '-', 1)
left join levels as lower_level on lower_level.level = split_part(cohort.insertion_level, '-', 2)
where lower_level.level_order is distinct from upper_level.level_order + 1
   or upper_level.level_order < (select level_order from levels where level = 'T10')
   or lower_level.level_order > (select level_order from levels where level = 'S1')
