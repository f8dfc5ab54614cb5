{#
    Data tests that check rows one at a time need not re-read all history on every build: the
    rows of a batch do not change once built (models merge by batch; a re-read batch rewrites
    the same rows). dbt_project.yml gives the lake's tests `where: "__new_batches__"`, and this
    override of dbt's `get_where_subquery` turns that placeholder into the batches the tested
    model built last (the `lakehouse.last_built_batches` property its post-hook writes). So a
    build with one new batch tests that batch; a first build or a --full-refresh tests all.

    Where no such record exists (a table rebuilt whole, like the dimensions, or a view over the
    sources) the placeholder means every row. Tests that compare a model with another one
    (sums_match, row_counts_match) always read both whole: a filter on one side only would
    make them fail. `--vars '{test_all_batches: true}'` tests every row of every model.
#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- if '__new_batches__' in where -%}
        {%- set where = where | replace('__new_batches__', _new_batches_predicate(relation)) -%}
    {%- endif -%}
    {%- if where and where != 'true' -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{% macro _new_batches_predicate(relation) %}
    {%- set whole_model_tests = ['sums_match', 'row_counts_match'] -%}
    {%- if not execute or target.type not in ['spark', 'glue'] or var('test_all_batches', false)
        or (model.test_metadata is defined and model.test_metadata.name in whole_model_tests) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set record = _last_built_batches(relation) -%}
    {%- if record is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set last_built, built = record -%}
    {%- if last_built | length == 0 -%}
        {{ return('false') }}
    {%- endif -%}
    {%- if last_built | length == built | unique | list | length -%}
        {#- the last build built everything the model holds (a first build, a full refresh) -#}
        {{ return('true') }}
    {%- endif -%}
    {{ return(in_list(['batch_id'], last_built | sort)) }}
{% endmacro %}

{#- The batches `relation` (or, for a view, the incremental model it reads) built last and all
    the batches it holds, or none when there is no record. -#}
{% macro _last_built_batches(relation) %}
    {%- set candidates = [relation] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.alias == relation.identifier
        and node.schema == relation.schema and node.config.materialized == 'view' -%}
        {%- for parent_id in node.depends_on.nodes if parent_id in graph.nodes -%}
            {%- set parent = graph.nodes[parent_id] -%}
            {%- if parent.config.materialized == 'incremental' -%}
                {%- do candidates.append(api.Relation.create(
                    database=parent.database, schema=parent.schema, identifier=parent.alias)) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for candidate in candidates -%}
        {%- set properties = table_properties(candidate) -%}
        {%- if 'lakehouse.last_built_batches' in properties -%}
            {{ return([
                listed_property(properties, 'lakehouse.last_built_batches'),
                listed_property(properties, built_batches_property()),
            ]) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{% endmacro %}
