{# Incremental staging of a large raw table (materialized='incremental', delete+insert
   on the model's key). A full build reads every raw row. An incremental build reads only
   the keys that rows loaded since the last build touch, with every delivered version of
   those keys, so latest_version() picks exactly as a full build would, and delete+insert
   replaces just those keys. The watermark is the raw load time the table was built
   through (column _built_through, from raw._loaded_at). The flow forces a full refresh
   when the build's inputs change (models, macros, mapping, seeds, pseudonym key). #}
{% macro incremental_keys(relation, key) -%}
    {%- if is_incremental() %}
    where {{ key }} in (
        select {{ key }} from {{ relation }}
        where _loaded_at > (
            select coalesce(max(_built_through), '-infinity'::timestamp) from {{ this }}
        )
    )
    {%- endif %}
{%- endmacro %}

{# The raw load time a build has read through (see incremental_keys). #}
{% macro built_through(relation) -%}
    (select max(_loaded_at) from {{ relation }})
{%- endmacro %}
