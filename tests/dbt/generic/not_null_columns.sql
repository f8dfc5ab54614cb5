{#- None of `columns` is null: dbt's not_null on several columns of one model as one scan (one
    test node: see primary_key.sql for why that matters on the lake). Each failing row says which
    columns are null in `failed_check` ('null <column>', comma-separated). -#}
{% test not_null_columns(model, columns) %}
select
    *,
    concat_ws(', ', {% for column in columns -%}
        case when {{ column }} is null then 'null {{ column }}' end
        {%- if not loop.last %}, {% endif %}
    {%- endfor %}) as failed_check
from {{ model }}
where {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
