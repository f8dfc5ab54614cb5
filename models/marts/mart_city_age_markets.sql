-- Markets by city category x age band (gender and marital status summed): the insights report's
-- heatmap, one cell per row.
with customers as (

    select * from {{ ref('dim_customers') }}

),

markets as (

    select
        city_category,
        age_band,
        count(*) as customers,
        cast(sum(total_spent) as bigint) as total_revenue
    from customers
    group by city_category, age_band

),

final as (

    select
        city_category,
        age_band,
        customers,
        total_revenue
    from markets

)

select * from final
