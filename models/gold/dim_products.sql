{{ config(**lake_table_config()) }}

-- One row per product: revenue, units, reach, share of all revenue, segment and ABC class.
-- Totals are sums of the per-batch state (int_product_batch_sales); shares, ranks and classes
-- are relative to all products, so they are recomputed over all products.
with product_batches as (

    select * from {{ ref('int_product_batch_sales') }}

),

product_categories as (

    select * from {{ ref('product_categories') }}

),

product_totals as (

    select
        product_id,
        -- one category per product in the real data; the latest row wins if rows disagree
        max_by(
            product_category,
            {{ batch_order_key(line='last_line_number') }}
        ) as product_category,
        sum(revenue_amount) as total_revenue,
        sum(units_sold) as units_sold,
        sum(new_customer_count) as distinct_customers
    from product_batches
    group by product_id

),

ranked as (

    select
        product_totals.*,
        sum(product_totals.total_revenue) over () as all_revenue,
        avg(cast(product_totals.total_revenue as decimal(18, 2))) over () as mean_product_revenue,
        row_number()
            over (order by product_totals.total_revenue desc, product_totals.product_id asc)
            as revenue_rank,
        sum(product_totals.total_revenue) over (
            order by product_totals.total_revenue desc, product_totals.product_id asc
            rows between unbounded preceding and current row
        ) as cumulative_revenue
    from product_totals

),

final as (

    select
        ranked.product_id,
        ranked.product_category,
        coalesce(product_categories.product_category_name, 'Unknown') as product_category_name,
        ranked.total_revenue,
        ranked.units_sold,
        ranked.distinct_customers,
        cast(
            round(cast(ranked.total_revenue as decimal(18, 2)) / ranked.distinct_customers, 2)
            as decimal(18, 2)
        ) as avg_revenue_per_customer,
        cast(
            round(100 * cast(ranked.total_revenue as decimal(18, 2)) / ranked.all_revenue, 2)
            as decimal(9, 2)
        ) as revenue_contribution_pct,
        cast(ranked.revenue_rank as int) as revenue_rank,
        case
            when ranked.total_revenue > ranked.mean_product_revenue then 'Top Seller'
            else 'Regular'
        end as product_segment,
        case
            when ranked.cumulative_revenue <= 0.80 * ranked.all_revenue then 'A'
            when ranked.cumulative_revenue <= 0.95 * ranked.all_revenue then 'B'
            else 'C'
        end as abc_class
    from ranked
    left join product_categories
        on ranked.product_category = product_categories.product_category

)

select * from final
