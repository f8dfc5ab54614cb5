{#- The model has as many rows as `compare_model` (optionally filtered). -#}
{% test row_counts_match(model, compare_model, compare_where=none) %}
with this_side as (
    select count(*) as row_count from {{ model }}
),
other_side as (
    select count(*) as row_count from {{ compare_model }}
    {%- if compare_where %} where {{ compare_where }}{% endif %}
)
select this_side.row_count as model_rows, other_side.row_count as compare_rows
from this_side
cross join other_side
where this_side.row_count <> other_side.row_count
{% endtest %}
