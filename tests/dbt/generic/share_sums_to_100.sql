{#- Percentage shares over all rows add up to 100 (within rounding: 0.01 per row). -#}
{% test share_sums_to_100(model, column_name) %}
select sum({{ column_name }}) as total_share, count(*) as share_rows
from {{ model }}
having abs(sum({{ column_name }}) - 100) > 0.01 * count(*)
{% endtest %}
