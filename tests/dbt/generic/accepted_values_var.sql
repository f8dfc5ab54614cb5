{#- accepted_values whose list is a project var, so the data tests and Silver's validation
    rules (macros/validation.sql) read the same value set. -#}
{% test accepted_values_var(model, column_name, var_name) %}
select {{ column_name }} as value, count(*) as rows_with_value
from {{ model }}
where {{ column_name }} is not null
  and cast({{ column_name }} as {{ dbt.type_string() }}) not in (
    {%- for value in var(var_name) %}'{{ value }}'{{ ',' if not loop.last }}{% endfor -%}
  )
group by {{ column_name }}
{% endtest %}
