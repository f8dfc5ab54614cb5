{{ config(**lake_incremental_config(unique_key='sale_id', partition_by=['ingest_date'])) }}

-- depends_on: {{ ref('stg_walmart__batches') }}
-- Every Bronze row of the committed batches, judged once: valid rows and rejected rows are the
-- two views over this table (slv_sales, slv_sales_rejected), so Bronze is parsed in one pass.
with staged as (

    select * from {{ ref('stg_walmart__sales') }}

),

judged as (

    select
        staged.*,
        {{ rejection_reasons() }} as rejection_reasons
    from staged
    where {{ incremental_batch_filter(match_ingest_date=true) }}

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
        marital_status_code = 1 as is_married,
        product_category,
        purchase_amount,
        rejection_reasons is null as is_valid,
        rejection_reasons,
        -- the raw row is kept for rejected rows only
        case when rejection_reasons is not null then raw_record end as raw_record,
        source_line_number,
        batch_id,
        ingest_date
    from judged

)

select * from final
