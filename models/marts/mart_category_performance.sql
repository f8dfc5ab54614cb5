-- Product categories by revenue, with the running share for a Pareto chart and the top products.
with products as (

    select * from {{ ref('dim_products') }}

),

ranked_products as (

    select
        products.*,
        row_number() over (
            partition by products.product_category
            order by products.total_revenue desc, products.product_id asc
        ) as rank_in_category
    from products

),

categories as (

    select
        product_category,
        max(product_category_name) as product_category_name,
        count(*) as products,
        cast(sum(total_revenue) as bigint) as total_revenue,
        cast(sum(units_sold) as bigint) as units_sold,
        max(case when rank_in_category = 1 then product_id end) as top_product_id,
        {{ lakehouse.ordered_list(
            "case when rank_in_category <= 3 then product_id end", 'rank_in_category'
        ) }} as top_3_product_ids
    from ranked_products
    group by product_category

),

final as (

    select
        product_category,
        product_category_name,
        products,
        total_revenue,
        units_sold,
        {{ lakehouse.ratio('total_revenue', 'units_sold') }} as avg_price,
        {{ lakehouse.percent_of('total_revenue', 'sum(total_revenue) over ()') }}
            as revenue_share_pct,
        {{ lakehouse.percent_of(
            'sum(total_revenue) over (order by total_revenue desc, product_category rows between unbounded preceding and current row)',
            'sum(total_revenue) over ()'
        ) }} as cumulative_revenue_share_pct,
        rank() over (order by total_revenue desc) as revenue_rank,
        top_product_id,
        top_3_product_ids
    from categories

)

select * from final
