{#
    Gold on Redshift: an external schema over the Glue Data Catalog's Gold database, so the marts
    read the lake's Gold tables in place through Redshift Spectrum (no copy, no load job).

        dbt run-operation create_gold_external_schema --target prod_warehouse

    Idempotent (`if not exists`). The schema is named by the project's generate_schema_name('gold'),
    so LAKEHOUSE_SCHEMA_PREFIX applies exactly as it does to the Glue database dbt-glue writes: both
    are "<prefix>gold". IAM role from LAKEHOUSE_SPECTRUM_ROLE_ARN, region from AWS_REGION (both are
    outputs of infra/warehouse.yaml / infra/lake.yaml, see docs/runbook.md). The role must be attached
    to the Redshift Serverless namespace (the warehouse stack does that).

    Arguments (all optional, `--args '{glue_database: x, grant_usage_to: y}'`):
      glue_database   the Glue database to map; default: the same name as the schema
      grant_usage_to  a Redshift user or role (e.g. "IAMR:ci-dbt") given usage on the new schema

    The values end up inside SQL string literals, so each is checked against its expected shape
    first and the macro refuses anything else.
#}

{% macro create_gold_external_schema(glue_database=none, grant_usage_to=none) %}
    {%- if target.type != 'redshift' -%}
        {{ exceptions.raise_compiler_error(
            "create_gold_external_schema is for a Redshift target (e.g. --target prod_warehouse), not "
            ~ target.type) }}
    {%- endif -%}
    {%- set sql = gold_external_schema_sql(glue_database, grant_usage_to) -%}
    {{ log("Creating the external schema for Gold (if it does not exist):\n" ~ sql, info=True) }}
    {%- call statement('create_gold_external_schema', fetch_result=false, auto_begin=false) -%}
        {{ sql }}
    {%- endcall -%}
    {{ log("External schema ready: " ~ generate_schema_name('gold', none), info=True) }}
{% endmacro %}


{% macro gold_external_schema_sql(glue_database=none, grant_usage_to=none) %}
    {%- set schema = generate_schema_name('gold', none) | trim -%}
    {%- set database = (glue_database or schema) | trim -%}
    {%- set role_arn = env_var('LAKEHOUSE_SPECTRUM_ROLE_ARN', '') | trim -%}
    {%- set region = env_var('AWS_REGION', '') | trim -%}

    {%- set checks = [
        ('schema name', schema, '^[a-z_][a-z0-9_]{0,126}$'),
        ('Glue database (glue_database)', database, '^[a-z0-9_]{1,255}$'),
        ('LAKEHOUSE_SPECTRUM_ROLE_ARN', role_arn, '^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$'),
        ('AWS_REGION', region, '^[a-z]{2}(-[a-z]+)+-[0-9]$'),
    ] -%}
    {%- if grant_usage_to -%}
        {%- do checks.append(('grant_usage_to', grant_usage_to, '^[A-Za-z0-9_:.@+=,-]{1,127}$')) -%}
    {%- endif -%}
    {%- for label, value, pattern in checks -%}
        {%- if not modules.re.match(pattern, value) -%}
            {{ exceptions.raise_compiler_error(
                "create_gold_external_schema: " ~ label ~ " is " ~ (value or "empty")
                ~ ", expected " ~ pattern) }}
        {%- endif -%}
    {%- endfor -%}

    create external schema if not exists {{ schema }}
    from data catalog
    database '{{ database }}'
    iam_role '{{ role_arn }}'
    region '{{ region }}'
    {%- if grant_usage_to %};
    grant usage on schema {{ schema }} to "{{ grant_usage_to }}"
    {%- endif %}
{% endmacro %}
