-- Staging: one row per Bronze row, typed, trimmed and renamed. Values that do not fit their type
-- become null here and are judged in slv_sales_validated; nothing is dropped.
with source as (

    select * from {{ source('bronze', 'walmart_sales') }}

),

renamed as (

    select
        concat(batch_id, ':', trim(source_line_number)) as sale_id,
        try_cast(trim(User_ID) as int) as customer_id,
        upper(trim(Product_ID)) as product_id,
        upper(trim(Gender)) as gender,
        trim(Age) as age_band,
        try_cast(trim(Occupation) as int) as occupation_code,
        upper(trim(City_Category)) as city_category,
        trim(Stay_In_Current_City_Years) as years_in_city,
        try_cast(trim(Marital_Status) as int) as marital_status_code,
        try_cast(trim(Product_Category) as int) as product_category,
        try_cast(trim(Purchase) as bigint) as purchase_amount,
        try_cast(trim(source_line_number) as int) as source_line_number,
        batch_id,
        cast(ingest_date as date) as ingest_date,
        -- the row as it arrived, for the rejected-rows model
        to_json(named_struct(
            'User_ID', User_ID,
            'Product_ID', Product_ID,
            'Gender', Gender,
            'Age', Age,
            'Occupation', Occupation,
            'City_Category', City_Category,
            'Stay_In_Current_City_Years', Stay_In_Current_City_Years,
            'Marital_Status', Marital_Status,
            'Product_Category', Product_Category,
            'Purchase', Purchase
        )) as raw_record
    from source

)

select * from renamed
