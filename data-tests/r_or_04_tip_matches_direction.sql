-- R-OR-04 (error): a cephalad catheter's tip lies above the insertion interspace; otherwise at or below it.
with levels as (select * from {{ ref('vertebral_levels') }})
select cohort.patient_key, cohort.insertion_level, cohort.catheter_tip_level, cohort.catheter_cephalad
from {{ ref('cohort_idds') }} as cohort
inner join levels as tip on tip.level = cohort.catheter_tip_level
inner join levels as upper_level on upper_level.level = split_part(cohort.insertion_level, '-', 1)
where (cohort.catheter_cephalad and tip.level_order >= upper_level.level_order)
   or (not cohort.catheter_cephalad and tip.level_order < upper_level.level_order)
