{# Records whose patient is absent from every delivered patients file (raw.<file>.patient_id.orphan). #}
{% test orphan_patient(model, column_name) %}
select {{ column_name }} as patient_key, *
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} not in (select patient_key from {{ ref('stg_emr__patients') }})
{% endtest %}
