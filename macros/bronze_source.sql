{#
    Bronze is the files the ingestion package landed; these macros put a catalog table over them
    (schema `bronze`) so that the dbt source `walmart` (models/silver/staging/walmart/
    _walmart__sources.yml) can read them. Run at the start of every lake build (on-run-start):
    idempotent, and cheap when nothing changed.

    walmart_sales          CSV, every column a string (Bronze keeps rows, Silver judges them),
                           partitioned by ingest_date and batch_id (Hive-style folders).
    walmart_sales_batches  the ingestion ledger: one JSON object per committed batch. Silver reads
                           only batches listed here, so a half-landed batch is never built.
#}

{% macro bronze_columns() %}
    {#- The ten columns of the raw file, in order, then the line number the ingestion adds. -#}
    {{ return([
        'User_ID', 'Product_ID', 'Gender', 'Age', 'Occupation', 'City_Category',
        'Stay_In_Current_City_Years', 'Marital_Status', 'Product_Category', 'Purchase',
        'source_line_number'
    ]) }}
{% endmacro %}

{#
    Whether this command runs a node that reads Bronze: a selected node that reads a Bronze
    source, directly or through views (a view reads its sources when it is read). Only then does
    the lake's on-run-start register Bronze (the ledger refreshed and read, new batches'
    partitions added): `dbt run --select dim_customers` reads Gold and Silver tables alone, and
    on a cold session that registration cost 1.3 s of its 12. A model that only lists the
    committed batches (the incremental filters) reads the ledger through its staging view, which
    lists the ledger's files itself. A unit test stands for the model it tests; anything this
    cannot place (a source freshness check) counts as reading Bronze.
#}
{% macro selection_reads_bronze() %}
    {%- set seen = [] -%}
    {%- for resource_id in selected_resources -%}
        {%- set parts = resource_id.split('.') -%}
        {%- set node_id = 'model.' ~ parts[1] ~ '.' ~ parts[2]
            if parts[0] == 'unit_test' else resource_id -%}
        {%- if _reads_bronze(node_id, seen) -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{% endmacro %}

{% macro _reads_bronze(node_id, seen) %}
    {%- if node_id in seen -%}
        {{ return(false) }}
    {%- endif -%}
    {%- do seen.append(node_id) -%}
    {%- set node = graph.nodes.get(node_id) -%}
    {%- if node is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- for parent_id in node.depends_on.nodes -%}
        {%- if parent_id in graph.sources -%}
            {%- if graph.sources[parent_id].schema == generate_schema_name('bronze', none) | trim -%}
                {{ return(true) }}
            {%- endif -%}
        {%- elif graph.nodes.get(parent_id, {}).get('config', {}).get('materialized') in ['view', 'ephemeral']
            and _reads_bronze(parent_id, seen) -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{% endmacro %}

{% macro create_bronze_tables() %}
    {{ return(adapter.dispatch('create_bronze_tables', 'lakehouse')()) }}
{% endmacro %}

{% macro default__create_bronze_tables() %}
    {#- Warehouses never read Bronze. -#}
    {{ return('') }}
{% endmacro %}

{% macro spark__create_bronze_tables() %}
    {#- Runs its statements itself (the partitions to add are read from the ledger) and returns
        nothing for the hook to run. -#}
    {%- set location = var('bronze_location') -%}
    {%- set schema = generate_schema_name('bronze', none) -%}
    {%- do run_statements('create database if not exists ' ~ schema) -%}
    {%- call statement('bronze_sales_table') -%}
    create table if not exists {{ schema }}.walmart_sales (
        {%- for column in bronze_columns() %}
        {{ column }} string,
        {%- endfor %}
        ingest_date string,
        batch_id string
    )
    using csv
    options (header 'true', mode 'PERMISSIVE', encoding 'UTF-8', quote '"', escape '"')
    partitioned by (ingest_date, batch_id)
    location '{{ location }}/walmart_sales'
    {%- endcall -%}
    {%- call statement('bronze_ledger_table') -%}
    create table if not exists {{ schema }}.walmart_sales_batches (
        batch_id string,
        ingest_date string,
        source_name string,
        source_sha256 string,
        rows bigint,
        bytes bigint,
        parts int,
        ingested_at timestamp
    )
    using json
    location '{{ location }}/_ledger/walmart_sales'
    {%- endcall -%}
    {#- The ledger is kept in the session's memory from its first read on: the batch filters,
        the first-purchase models' landing times, the batch quality model and tests all read it,
        each read of its JSON files cost 0.4 s, and one read means the whole command sees one
        ledger. Uncached before the refresh: a refresh of a cached file table re-caches it with
        the file list it had (a warm session then never saw a new batch). -#}
    {%- do run_statements('uncache table if exists ' ~ schema ~ '.walmart_sales_batches') -%}
    {%- do run_statements('refresh table ' ~ schema ~ '.walmart_sales_batches') -%}
    {%- do run_statements('cache lazy table ' ~ schema ~ '.walmart_sales_batches') -%}
    {%- do register_bronze_partitions(schema) -%}
    {{ return('') }}
{% endmacro %}

{#
    Register the Bronze partition of every committed batch that the catalog does not list yet.
    Only committed batches (the ledger) are registered: the parts of a landing that died before
    its ledger entry stay invisible. (`msck repair table` did the same by listing every folder of
    Bronze on every build, 2.5 s and growing with the history.)
#}
{% macro register_bronze_partitions(schema) %}
    {%- set registered = run_query('show partitions ' ~ schema ~ '.walmart_sales').columns[0].values() -%}
    {%- set missing = [] -%}
    {#- the ledger as the whole build sees it (read here once, kept for the models) -#}
    {%- for batch_id, ingest_date, _ in committed_batches(schema ~ '.walmart_sales_batches') -%}
        {%- set partition = "partition (ingest_date = '" ~ ingest_date ~ "', batch_id = '" ~ batch_id ~ "')" -%}
        {%- if ('ingest_date=' ~ ingest_date ~ '/batch_id=' ~ batch_id) not in registered
            and partition not in missing -%}
            {%- do missing.append(partition) -%}
        {%- endif -%}
    {%- endfor -%}
    {#- in statements of bounded size: a first build of a long history adds every partition -#}
    {%- for chunk in bounded_chunks(missing, ' ') -%}
        {%- do run_statements('alter table ' ~ schema ~ '.walmart_sales add if not exists ' ~ chunk | join(' ')) -%}
    {%- endfor -%}
{% endmacro %}
