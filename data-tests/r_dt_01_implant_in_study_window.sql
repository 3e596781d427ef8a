-- R-DT-01 (error): the index implant is dated inside the study window.
select patient_key, implant_date from {{ ref('cohort_idds') }}
where implant_date not between date '{{ var("cohort_start") }}' and date '{{ var("cohort_end") }}'
