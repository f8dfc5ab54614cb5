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

    A replaced table keeps its earlier states as snapshots, and their files, until something
    expires them. Nothing here does: the warehouse's `gold.*` views point at the metadata file
    that was current at its last build (macros/gold_in_place.sql), so expiring snapshots - or
    dropping a table with PURGE on --full-refresh - from a lake-only command left those views
    reading files that were gone (the benchmark's check after `dbt run --full-refresh` failed
    so). Expiry belongs after a build of both targets (docs/design-notes.md).
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
