-- Products by revenue, best first, with their share of all revenue and ABC class.
with products as (

    select * from {{ ref('dim_products') }}

),

final as (

    select
        product_id,
        product_category,
        product_category_name,
        revenue_rank,
        total_revenue,
        units_sold,
        distinct_customers,
        avg_revenue_per_customer,
        revenue_contribution_pct,
        abc_class,
        product_segment
    from products

)

select * from final
