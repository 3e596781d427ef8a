-- R-ID-03 (error): a replacement or revision is never an index implant.
select patient_key, implant_id from {{ ref('fct_implants') }}
where is_index_implant and is_replacement
