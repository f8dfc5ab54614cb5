{#
    Iceberg tables as dbt-spark sees them, and what a replaced table leaves behind.

    dbt-spark tells an Iceberg table by the line "Provider: iceberg" of `show table extended`.
    Through Iceberg's session catalog on a Hive metastore (the local lake) that line reads
    "Provider: hive": the metastore marks an Iceberg table with the property table_type=ICEBERG
    instead. Taken for Hive tables, the dimensions were dropped and created again on every
    build, not replaced (`create or replace`): a moment with no table, and the dropped table's
    files left behind unreferenced - a drop without PURGE keeps them - so after 13 builds of a
    550k lake dim_customers' folder held 104 files for one 6,000-row table, growing with every
    watch cycle. `lake_relation_information` says "Provider: iceberg" where the metastore says
    Iceberg, so dbt-spark replaces these tables in one commit.

    A table that is still dropped (an incremental model on --full-refresh) is dropped with PURGE
    when it is Iceberg: its files go with it instead of staying on disk, unreferenced, forever.
    A replaced table keeps its earlier states as snapshots until they are expired:
    `expire_replaced_snapshots` does that every `lake_replaced_snapshots_kept` builds.
#}

{% macro spark__list_relations_without_caching(relation) %}
    {%- call statement('list_relations_without_caching', fetch_result=True) -%}
        show table extended in {{ relation.schema }} like '*'
    {%- endcall -%}
    {%- set rows = [] -%}
    {%- for namespace, name, is_temporary, information
        in load_result('list_relations_without_caching').table -%}
        {%- do rows.append([namespace, name, is_temporary, lake_relation_information(information)]) -%}
    {%- endfor -%}
    {{ return(rows) }}
{% endmacro %}

{#- `show table extended`'s description of a table, with the Provider line an Iceberg table's
    metastore entry implies (table_type=ICEBERG among its table properties). -#}
{% macro lake_relation_information(information) %}
    {%- if 'Provider: hive' in information
        and modules.re.search('^Table Properties: \\[.*\\btable_type=ICEBERG\\b', information, modules.re.M) -%}
        {{ return(information | replace('Provider: hive', 'Provider: iceberg')) }}
    {%- endif -%}
    {{ return(information) }}
{% endmacro %}

{% macro spark__drop_relation(relation) %}
    {%- call statement('drop_relation', auto_begin=False) -%}
        drop {{ relation.type }} if exists {{ relation }}{{ ' purge' if relation.is_iceberg and relation.is_table }}
    {%- endcall -%}
{% endmacro %}

{#- Post-hook of a lake table rebuilt in full (the dimensions): once the table holds more than
    `lake_replaced_snapshots_kept` snapshots, expire every one but the current. Counting costs a
    metadata query; expiring ~1 s on a warm session, paid once every that many builds. -#}
{% macro expire_replaced_snapshots() %}
    {{ return(adapter.dispatch('expire_replaced_snapshots', 'lakehouse')()) }}
{% endmacro %}

{% macro default__expire_replaced_snapshots() %}
    {{ return('select 1') }}
{% endmacro %}

{% macro spark__expire_replaced_snapshots() %}
    {%- if not execute or lake_file_format() != 'iceberg' -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set snapshots = run_query('select count(*) from ' ~ this ~ '.snapshots').columns[0].values()[0] -%}
    {%- if snapshots <= var('lake_replaced_snapshots_kept') -%}
        {{ return('select 1') }}
    {%- endif -%}
    {#- every snapshot older than this command: all but the one this build just committed -#}
    {{ return("call spark_catalog.system.expire_snapshots(table => '" ~ this ~ "', older_than => timestamp '"
        ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "', retain_last => 1)") }}
{% endmacro %}
