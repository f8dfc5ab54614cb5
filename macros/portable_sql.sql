{#
    The few places where the warehouses' SQL differs, written once each. Marts call these and
    stay identical on DuckDB (local) and Redshift (prod).
#}

{#- num / den as an exact decimal, rounded; null when den is 0 (no integer division anywhere). -#}
{% macro ratio(numerator, denominator, scale=2) %}
    {{- return(adapter.dispatch('ratio', 'lakehouse')(numerator, denominator, scale)) -}}
{% endmacro %}

{% macro default__ratio(numerator, denominator, scale) -%}
    cast(round(cast({{ numerator }} as decimal(38, 6)) / nullif({{ denominator }}, 0), {{ scale }}) as decimal(18, {{ scale }}))
{%- endmacro %}

{#- 100 x part / whole, 2 decimals. -#}
{% macro percent_of(part, whole) -%}
    {{ lakehouse.ratio('100.0 * ' ~ part, whole, 2) }}
{%- endmacro %}

{#- The median of an expression (an aggregate). -#}
{% macro median(expression) %}
    {{- return(adapter.dispatch('median', 'lakehouse')(expression)) -}}
{% endmacro %}

{% macro default__median(expression) -%}
    percentile_cont(0.5) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__median(expression) -%}
    quantile_cont({{ expression }}, 0.5)
{%- endmacro %}

{% macro redshift__median(expression) -%}
    median({{ expression }})
{%- endmacro %}

{#- Comma-separated values of an expression, in a given order (an aggregate). -#}
{% macro ordered_list(expression, order_by) %}
    {{- return(adapter.dispatch('ordered_list', 'lakehouse')(expression, order_by)) -}}
{% endmacro %}

{% macro default__ordered_list(expression, order_by) -%}
    listagg({{ expression }}, ', ') within group (order by {{ order_by }})
{%- endmacro %}

{% macro duckdb__ordered_list(expression, order_by) -%}
    string_agg({{ expression }}, ', ' order by {{ order_by }})
{%- endmacro %}
