-- Every customer ranked by total spent and by CLV, with segments and demographics:
-- the list marketing starts from (filter on spend_segment = 'VIP' for the top tier).
with customers as (

    select * from {{ ref('dim_customers') }}

),

ranked as (

    select
        customer_id,
        rank() over (order by total_spent desc) as spend_rank,
        rank() over (order by coalesce(predicted_clv, historic_clv) desc) as clv_rank,
        total_spent,
        historic_clv,
        predicted_clv,
        purchase_count,
        distinct_products,
        avg_purchase_amount,
        spend_segment,
        frequency_segment,
        gender,
        age_band,
        age_group,
        city_category,
        city_category_name,
        years_in_city,
        is_married
    from customers

)

select * from ranked
