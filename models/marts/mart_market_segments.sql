-- Markets: city category x age band x gender x marital status, ranked by revenue.
with customers as (

    select * from {{ ref('dim_customers') }}

),

markets as (

    select
        city_category,
        age_band,
        gender,
        is_married,
        count(*) as customers,
        cast(sum(purchase_count) as bigint) as purchases,
        cast(sum(total_spent) as bigint) as total_revenue
    from customers
    group by city_category, age_band, gender, is_married

),

final as (

    select
        city_category,
        age_band,
        gender,
        is_married,
        customers,
        purchases,
        total_revenue,
        {{ lakehouse.ratio('total_revenue', 'purchases') }} as avg_purchase_amount,
        {{ lakehouse.ratio('total_revenue', 'customers') }} as revenue_per_customer,
        {{ lakehouse.percent_of('total_revenue', 'sum(total_revenue) over ()') }}
            as revenue_share_pct,
        rank() over (order by total_revenue desc) as revenue_rank
    from markets

)

select * from final
