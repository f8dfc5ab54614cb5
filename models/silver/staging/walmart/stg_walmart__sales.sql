-- Staging: one row per Bronze row, typed, trimmed and renamed. Values that do not fit their type
-- become null here and are judged in slv_sales_validated; nothing is dropped.
with source as (

    select * from {{ source('walmart', 'walmart_sales') }}

),

renamed as (

    select
        concat(batch_id, ':', trim(source_line_number)) as sale_id,
        try_cast(trim(user_id) as int) as customer_id,
        upper(trim(product_id)) as product_id,
        upper(trim(gender)) as gender,
        trim(age) as age_band,
        try_cast(trim(occupation) as int) as occupation_code,
        upper(trim(city_category)) as city_category,
        trim(stay_in_current_city_years) as years_in_city,
        try_cast(trim(marital_status) as int) as marital_status_code,
        try_cast(trim(product_category) as int) as product_category,
        try_cast(trim(purchase) as bigint) as purchase_amount,
        try_cast(trim(source_line_number) as int) as source_line_number,
        batch_id,
        cast(ingest_date as date) as ingest_date,
        -- the row as it arrived, for the rejected-rows model
        to_json(named_struct(
            'User_ID', user_id,
            'Product_ID', product_id,
            'Gender', gender,
            'Age', age,
            'Occupation', occupation,
            'City_Category', city_category,
            'Stay_In_Current_City_Years', stay_in_current_city_years,
            'Marital_Status', marital_status,
            'Product_Category', product_category,
            'Purchase', purchase
        )) as raw_record
    from source

)

select * from renamed
