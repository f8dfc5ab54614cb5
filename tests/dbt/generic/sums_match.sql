{#- The sum of `column_name` equals the sum of `compare_column` in `compare_model`
    (e.g. no purchase amount lost or double-counted between layers). Between two models that
    both hold batches, batch by batch over the batches either built last
    (batches_built_last_by_either, macros/test_scope.sql); otherwise the two totals. -#}
{% test sums_match(model, column_name, compare_model, compare_column) %}
{%- set batches = batches_built_last_by_either(model, compare_model) -%}
{%- if batches is none %}
with this_side as (
    select coalesce(sum({{ column_name }}), 0) as total from {{ model }}
),
other_side as (
    select coalesce(sum({{ compare_column }}), 0) as total from {{ compare_model }}
)
select this_side.total as model_total, other_side.total as compare_total
from this_side
cross join other_side
where this_side.total <> other_side.total
{%- else %}
{{ compare_by_batch(
    'sum(' ~ column_name ~ ')', model, 'sum(' ~ compare_column ~ ')', compare_model, batches, 'total'
) }}
{%- endif %}
{% endtest %}
