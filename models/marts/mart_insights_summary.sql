-- The headline figures of the insights report in one row: the totals the marts agree on, and the
-- share of revenue the report's top products take. One row as of the newest ingest date; no row
-- while Gold holds no sale.
with sales as (

    select * from {{ ref('fct_sales') }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

products as (

    select * from {{ ref('dim_products') }}

),

sales_totals as (

    select
        max(ingest_date) as as_of_date,
        count(distinct ingest_date) as sales_days,
        cast(sum(purchase_amount) as bigint) as total_revenue,
        count(*) as purchases,
        min(ingest_date) as first_ingest_date
    from sales
    having count(*) > 0

),

customer_totals as (

    select count(*) as customers
    from customers

),

ranked_products as (

    select
        revenue_contribution_pct,
        -- the order the report lists them in: rank, then product id among ties
        row_number() over (order by revenue_rank, product_id) as report_position
    from products

),

product_totals as (

    select
        count(*) as products,
        sum(case
            when report_position <= {{ var('report_top_products') }}
                then revenue_contribution_pct
        end) as top_products_revenue_share_pct
    from ranked_products

),

final as (

    select
        sales_totals.as_of_date,
        sales_totals.sales_days,
        sales_totals.total_revenue,
        sales_totals.purchases,
        {{ lakehouse.ratio('sales_totals.total_revenue', 'sales_totals.purchases') }}
            as avg_purchase_amount,
        customer_totals.customers,
        product_totals.products,
        {{ var('report_top_products') }} as top_products_limit,
        product_totals.top_products_revenue_share_pct,
        sales_totals.first_ingest_date
    from sales_totals
    cross join customer_totals
    cross join product_totals

)

select * from final
