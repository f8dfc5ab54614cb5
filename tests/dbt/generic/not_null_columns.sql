{#- None of `columns` is null: dbt's not_null on several columns of one model as one scan (one
    test node: see primary_key.sql for why that matters on the lake). Each failing row says which
    columns are null in `failed_check` ('null <column>', comma-separated; macros/combined_tests.sql). -#}
{% test not_null_columns(model, columns) %}
{%- set nulls = null_checks(columns) -%}
select
    *,
    {{ failed_check_labels(nulls) }} as failed_check
from {{ model }}
where {{ any_check_fails(nulls) }}
{% endtest %}
