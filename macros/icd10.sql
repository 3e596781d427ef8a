{# Primary malignancy: ICD-10 C00-C76 or C80-C97 (secondary sites C77-C79 excluded). #}
{% macro is_primary_malignancy(code) -%}
    (regexp_matches({{ code }}, '^C[0-9]{2}')
     and (cast(substr({{ code }}, 2, 2) as integer) between 0 and 76
          or cast(substr({{ code }}, 2, 2) as integer) between 80 and 97))
{%- endmacro %}
