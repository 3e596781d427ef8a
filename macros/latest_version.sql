{# The latest delivered version of each key: the latest delivery wins; within one
   delivery the latest updated_at, then the last line. #}
{% macro latest_version(key) -%}
    qualify row_number() over (
        partition by {{ key }}
        order by _delivery_id desc, idds_timestamp(updated_at) desc nulls last, _line_number desc
    ) = 1
{%- endmacro %}
