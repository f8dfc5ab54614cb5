{#
    Gold, read in place by the warehouse.

    Production: Redshift reads the Glue catalog's gold database through a Spectrum external
    schema (macros/redshift_external_schema.sql), so nothing is published here.

    Local: at the end of a lake build, `publish_gold_manifest` writes one Parquet file listing
    each Gold table and where its current state lives (the current Iceberg metadata file, or the
    Hive Parquet folder). At the start of a warehouse build, `create_gold_views` turns each entry
    into a DuckDB view `gold.<table>` over those files. Nothing is copied, and `ref('fct_sales')`
    resolves to `gold.fct_sales` on both warehouses.
#}

{% macro gold_models() %}
    {%- set models = [] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.fqn[1] == 'gold' and node.config.enabled -%}
        {%- do models.append(node) -%}
    {%- endfor -%}
    {{ return(models | sort(attribute='name')) }}
{% endmacro %}

{% macro publish_gold_manifest() %}
    {{ return(adapter.dispatch('publish_gold_manifest', 'lakehouse')()) }}
{% endmacro %}

{% macro default__publish_gold_manifest() %}
    {{ return('') }}
{% endmacro %}

{% macro spark__publish_gold_manifest() %}
    {#- One statement: each Iceberg table's current metadata file is read inside the write (a
        query per table cost the end of every build ~0.1 s each). -#}
    {%- set entries = [] -%}
    {%- for node in gold_models() -%}
        {%- set relation = adapter.get_relation(node.database, node.schema, node.alias) -%}
        {%- if relation is not none -%}
            {%- if lake_file_format() == 'iceberg' -%}
                {%- set location = '(select file from ' ~ relation
                    ~ '.metadata_log_entries order by timestamp desc limit 1)' -%}
            {%- else -%}
                {#- a namespace: a plain `set` inside a for loop does not outlive the loop -#}
                {%- set found = namespace(location=none) -%}
                {%- for row in run_query('describe table extended ' ~ relation) if row[0] == 'Location' -%}
                    {%- set found.location = row[1] -%}
                {%- endfor -%}
                {%- set location = "'" ~ found.location ~ "'" -%}
            {%- endif -%}
            {%- do entries.append("select '" ~ node.alias ~ "' as table_name, '"
                ~ lake_file_format() ~ "' as table_format, " ~ location ~ " as location") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if entries -%}
        insert overwrite directory '{{ var("gold_manifest_location") }}' using parquet
        {{ entries | join('\nunion all\n') }}
    {%- endif -%}
{% endmacro %}

{% macro create_gold_views() %}
    {{ return(adapter.dispatch('create_gold_views', 'lakehouse')()) }}
{% endmacro %}

{% macro default__create_gold_views() %}
    {{ return('') }}
{% endmacro %}

{% macro duckdb__create_gold_views() %}
    {%- set manifest = var('gold_manifest_location') ~ '/*.parquet' -%}
    {%- set found = run_query("select count(*) from glob('" ~ manifest ~ "')").columns[0].values()[0] -%}
    {%- if found == 0 -%}
        {{ exceptions.raise_compiler_error(
            "No Gold tables published at " ~ var('gold_manifest_location')
            ~ ". Build the lake first: `lakehouse build` (or `dbt build --target lake`).") }}
    {%- endif -%}
    {%- set tables = run_query(
        "select table_name, table_format, location from read_parquet('" ~ manifest ~ "') order by 1") -%}
    {%- set schema = generate_schema_name('gold', none) -%}
    create schema if not exists {{ schema }};
    {%- for table_name, table_format, location in tables.rows %}
    create or replace view {{ schema }}.{{ table_name }} as
    {%- if table_format == 'iceberg' %}
        select * from iceberg_scan('{{ location }}');
    {%- else %}
        select * from read_parquet('{{ location | replace("file:", "") }}/**/*.parquet', hive_partitioning = true);
    {%- endif %}
    {%- endfor %}
{% endmacro %}
