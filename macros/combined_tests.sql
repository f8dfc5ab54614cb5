{#
    The checks of the combined data tests (tests/dbt/generic/primary_key.sql, not_null_columns.sql,
    accepted_values_by_column.sql), each a (label, predicate) pair: a row fails the test when any
    predicate holds, and its `failed_check` column lists the labels of those that hold.
#}

{#- ('null <column>', '<column> is null') for each of `columns` -#}
{% macro null_checks(columns) %}
    {%- set checks = [] -%}
    {%- for column in columns -%}
        {%- do checks.append(('null ' ~ column, column ~ ' is null')) -%}
    {%- endfor -%}
    {{ return(checks) }}
{% endmacro %}

{#- true on a row where any check's predicate holds -#}
{% macro any_check_fails(checks) -%}
    {%- for _, predicate in checks -%}
        {{ predicate }}{% if not loop.last %} or {% endif %}
    {%- endfor -%}
{%- endmacro %}

{#- the labels of the checks whose predicate holds on the row, comma-separated -#}
{% macro failed_check_labels(checks) -%}
    concat_ws(', ', {% for label, predicate in checks -%}
        case when {{ predicate }} then '{{ label }}' end
        {%- if not loop.last %}, {% endif %}
    {%- endfor %})
{%- endmacro %}
