-- Markets by city category x age band (gender and marital status summed): the insights report's
-- heatmap, one cell per row. A roll-up of mart_market_segments, so both count a market the
-- same way.
with market_segments as (

    select * from {{ ref('mart_market_segments') }}

),

final as (

    select
        city_category,
        age_band,
        cast(sum(customers) as bigint) as customers,
        cast(sum(total_revenue) as bigint) as total_revenue
    from market_segments
    group by city_category, age_band

)

select * from final
