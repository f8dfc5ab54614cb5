{{ config(**lake_table_config()) }}

-- One row per customer: demographics, spend, Customer Lifetime Value and the reference
-- implementation's segments. Totals are sums of the per-batch state (int_customer_batch_sales),
-- so a rebuild reads one small row per customer and batch, not every sale; the segments are
-- relative to the mean of all customers, so they are recomputed over all customers.
with customer_batches as (

    select * from {{ ref('int_customer_batch_sales') }}

),

age_bands as (

    select * from {{ ref('age_bands') }}

),

city_categories as (

    select * from {{ ref('city_categories') }}

),

customer_totals as (

    select
        customer_id,
        -- demographics should be constant per customer; where rows disagree, the latest row
        -- (batch order, then line) wins, and a test counts such customers
        max_by(profile, {{ batch_order_key(line='last_line_number') }})
            as latest,
        sum(spent_amount) as total_spent,
        sum(purchase_count) as purchase_count,
        sum(new_product_count) as distinct_products,
        min(ingest_date) as first_purchase_date,
        max(ingest_date) as last_purchase_date
    from customer_batches
    group by customer_id

),

lake_history as (

    -- calendar days of history in the lake, for the predicted CLV
    select datediff(max(ingest_date), min(ingest_date)) + 1 as history_days
    from customer_batches

),

with_averages as (

    select
        customer_totals.*,
        cast(customer_totals.total_spent as decimal(18, 2))
        / customer_totals.purchase_count as avg_purchase,
        avg(cast(customer_totals.total_spent as decimal(18, 2))) over () as mean_total_spent,
        lake_history.history_days
    from customer_totals
    cross join lake_history

),

final as (

    select
        with_averages.customer_id,
        with_averages.latest.gender as gender,
        with_averages.latest.age_band as age_band,
        coalesce(age_bands.age_group, 'Unknown') as age_group,
        with_averages.latest.occupation_code as occupation_code,
        with_averages.latest.city_category as city_category,
        coalesce(city_categories.city_category_name, 'Unknown') as city_category_name,
        with_averages.latest.years_in_city as years_in_city,
        with_averages.latest.is_married as is_married,
        with_averages.total_spent,
        with_averages.purchase_count,
        with_averages.distinct_products,
        cast(round(with_averages.avg_purchase, 2) as decimal(18, 2)) as avg_purchase_amount,
        {{ customer_lifetime_value('with_averages') }},
        case
            when with_averages.total_spent >= 2 * with_averages.mean_total_spent then 'VIP'
            when with_averages.total_spent >= with_averages.mean_total_spent then 'Loyal'
            else 'Regular'
        end as spend_segment,
        case
            when with_averages.distinct_products > 100 then 'High'
            when with_averages.distinct_products > 30 then 'Medium'
            else 'Low'
        end as frequency_segment,
        with_averages.first_purchase_date,
        with_averages.last_purchase_date
    from with_averages
    left join age_bands
        on with_averages.latest.age_band = age_bands.age_band
    left join city_categories
        on with_averages.latest.city_category = city_categories.city_category

)

select * from final
