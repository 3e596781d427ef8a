{# The source CTE of a staging model: the latest delivered version of each record of raw
   file `file`, keyed by idds_text(<key>). The latest delivery wins; within one delivery
   the latest updated_at, then the last line.

   Staging models are incremental (delete+insert on their key; dbt_project.yml). A full
   build reads every raw row. An incremental build reads only the keys that rows loaded
   since the last build touch, with every delivered version of those keys, so the latest
   version is picked exactly as a full build would, and only those keys are replaced. The
   watermark is the raw load time the table was built through (_built_through, from
   raw._loaded_at). The flow forces a full refresh when the build's inputs change
   (models, macros, mapping, seeds, pseudonym key: idds.dbt.build_fingerprint). #}
{% macro latest_delivered(file, key) -%}
    {%- set relation = source('emr', file) -%}
    {%- set key_text = 'idds_text(' ~ key ~ ')' -%}
    select *, (select max(_loaded_at) from {{ relation }}) as _built_through
    from {{ relation }}
    {%- if is_incremental() %}
    where {{ key_text }} in (
        select {{ key_text }} from {{ relation }}
        where _loaded_at > (
            select coalesce(max(_built_through), '-infinity'::timestamp) from {{ this }}
        )
    )
    {%- endif %}
    qualify row_number() over (
        partition by {{ key_text }}
        order by _delivery_id desc, idds_timestamp(updated_at) desc nulls last, _line_number desc
    ) = 1
{%- endmacro %}
