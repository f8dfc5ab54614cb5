{#- The model has as many rows as `compare_model` (optionally filtered). Between two models
    that both hold batches, batch by batch over the batches either built last
    (batches_built_last_by_either, macros/test_scope.sql); otherwise the two counts. -#}
{% test row_counts_match(model, compare_model, compare_where=none) %}
{%- set batches = batches_built_last_by_either(model, compare_model) -%}
{%- if batches is none %}
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
{%- else %}
{%- set other_side = compare_model if not compare_where else
    '(select * from ' ~ compare_model ~ ' where ' ~ compare_where ~ ')' %}
{{ compare_by_batch('count(*)', model, 'count(*)', other_side, batches, 'rows') }}
{%- endif %}
{% endtest %}
