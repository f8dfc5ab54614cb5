{{ config(materialized='view') }}

-- The valid purchase lines of Silver: one row per sale_id, every column typed and checked.
with validated as (

    select * from {{ ref('slv_sales_validated') }}

),

final as (

    select
        sale_id,
        customer_id,
        product_id,
        gender,
        age_band,
        occupation_code,
        city_category,
        years_in_city,
        is_married,
        product_category,
        purchase_amount,
        source_line_number,
        batch_id,
        ingest_date
    from validated
    where is_valid

)

select * from final
