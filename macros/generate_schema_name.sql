{#
    Schemas are the layer names, exactly: bronze, silver, gold, marts. Locally the lake folder
    ($LAKEHOUSE_HOME), not a schema prefix, keeps one developer's lake apart from another's.
    Production targets may share one Glue catalog / Redshift database between environments, so
    they prepend LAKEHOUSE_SCHEMA_PREFIX (e.g. "dev_") when it is set.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set layer = (custom_schema_name or target.schema) | trim -%}
    {%- if target.name.startswith('prod') -%}
        {{ env_var('LAKEHOUSE_SCHEMA_PREFIX', '') ~ layer }}
    {%- else -%}
        {{ layer }}
    {%- endif -%}
{%- endmacro %}
