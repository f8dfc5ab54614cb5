-- Spend segment x frequency segment: how many customers, how much revenue, what they are worth.
with customers as (

    select * from {{ ref('dim_customers') }}

),

segments as (

    select
        spend_segment,
        frequency_segment,
        count(*) as customers,
        cast(sum(total_spent) as bigint) as total_revenue,
        cast(sum(purchase_count) as bigint) as purchases,
        avg(historic_clv) as avg_historic_clv_raw,
        avg(predicted_clv) as avg_predicted_clv_raw,
        {{ lakehouse.median('total_spent') }} as median_total_spent_raw
    from customers
    group by spend_segment, frequency_segment

),

final as (

    select
        spend_segment,
        frequency_segment,
        customers,
        total_revenue,
        purchases,
        {{ lakehouse.percent_of('total_revenue', 'sum(total_revenue) over ()') }}
            as revenue_share_pct,
        {{ lakehouse.percent_of('customers', 'sum(customers) over ()') }} as customer_share_pct,
        cast(round(avg_historic_clv_raw, 2) as decimal(18, 2)) as avg_historic_clv,
        cast(round(avg_predicted_clv_raw, 2) as decimal(18, 2)) as avg_predicted_clv,
        {{ lakehouse.ratio('total_revenue', 'purchases') }} as avg_basket_amount,
        cast(round(median_total_spent_raw, 2) as decimal(18, 2)) as median_total_spent
    from segments

)

select * from final
