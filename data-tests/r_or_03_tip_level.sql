-- R-OR-03 (error part): the catheter tip is a vertebral level C1-L5.
with levels as (select * from {{ ref('vertebral_levels') }})
select cohort.patient_key, cohort.catheter_tip_level from {{ ref('cohort_idds') }} as cohort
left join levels on levels.level = cohort.catheter_tip_level
where levels.level_order is null or levels.level_order > (select level_order from levels where level = 'L5')
