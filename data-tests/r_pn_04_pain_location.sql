-- R-PN-04 (error): at least one pain location per patient.
select patient_key from {{ ref('cohort_idds') }}
where not (pain_site_lumbosacral or pain_site_abdomen or pain_site_back or pain_site_lower_limb
           or pain_site_perineum or pain_site_chest or pain_site_head_neck or pain_site_upper_limb)
