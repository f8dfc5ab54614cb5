-- Sales per ingest date, with how many customers bought for the first time that day.
with sales as (

    select * from {{ ref('fct_sales') }}

),

first_purchases as (

    select
        customer_id,
        min(ingest_date) as first_purchase_date
    from sales
    group by customer_id

),

daily as (

    select
        sales.ingest_date,
        cast(sum(sales.purchase_amount) as bigint) as total_revenue,
        count(*) as purchases,
        count(distinct sales.customer_id) as customers,
        count(distinct case
            when first_purchases.first_purchase_date = sales.ingest_date then sales.customer_id
        end) as new_customers
    from sales
    inner join first_purchases
        on sales.customer_id = first_purchases.customer_id
    group by sales.ingest_date

),

final as (

    select
        ingest_date,
        total_revenue,
        purchases,
        customers,
        new_customers,
        customers - new_customers as returning_customers,
        {{ lakehouse.ratio('total_revenue', 'purchases') }} as avg_purchase_amount,
        cast(sum(total_revenue) over (
            order by ingest_date rows between unbounded preceding and current row
        ) as bigint) as cumulative_revenue
    from daily

)

select * from final
