{#
    Customer Lifetime Value, two columns (see the `clv` doc block in models/gold/_gold__docs.md):

    historic_clv   = total_spent x clv_gross_margin                      (always)
    predicted_clv  = historic_clv
                     + purchase_count / history_days                     (purchases per day)
                       x clv_horizon_days x avg_purchase x clv_gross_margin
                   only once the lake holds at least clv_min_history_days days of history;
                   null before, because a rate measured over a single day says nothing.

    `totals` is a relation or CTE with total_spent, purchase_count, avg_purchase, history_days.
#}
{% macro customer_lifetime_value(totals) %}
    {%- set margin = 'cast(' ~ var('clv_gross_margin') ~ ' as decimal(9, 4))' -%}
    cast(round({{ totals }}.total_spent * {{ margin }}, 2) as decimal(18, 2)) as historic_clv,
    case
        when {{ totals }}.history_days >= {{ var('clv_min_history_days') }}
            then cast(round(
                {{ totals }}.total_spent * {{ margin }}
                + cast({{ totals }}.purchase_count as decimal(18, 6)) / {{ totals }}.history_days
                * {{ var('clv_horizon_days') }} * {{ totals }}.avg_purchase * {{ margin }},
                2) as decimal(18, 2))
    end as predicted_clv
{%- endmacro %}
