{{ config(materialized='view') }}

-- The Bronze rows Silver refused, with every rule each one breaks and the row as it arrived.
-- Nothing is dropped: per batch, Bronze rows = slv_sales rows + these rows.
with validated as (

    select * from {{ ref('slv_sales_validated') }}

),

final as (

    select
        sale_id,
        rejection_reasons,
        raw_record,
        source_line_number,
        batch_id,
        ingest_date
    from validated
    where not is_valid

)

select * from final
