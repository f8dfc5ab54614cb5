-- Staging over the ingestion ledger: one row per committed Bronze batch.
with source as (

    select * from {{ source('walmart', 'walmart_sales_batches') }}

),

renamed as (

    select
        batch_id,
        source_name,
        source_sha256,
        cast(rows as bigint) as row_count,
        cast(bytes as bigint) as byte_count,
        cast(parts as int) as part_count,
        cast(ingest_date as date) as ingest_date,
        cast(ingested_at as timestamp) as ingested_at
    from source

)

select * from renamed
