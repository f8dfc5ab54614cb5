{#
    Data tests that check rows one at a time need not re-read all history on every build: the
    rows of a batch do not change once built (models merge by batch; a re-read batch rewrites
    the same rows). dbt_project.yml gives the lake's tests `where: "__new_batches__"`, and this
    override of dbt's `get_where_subquery` turns that placeholder into the batches the tested
    model built last (the `lakehouse.last_built_batches` property its post-hook writes). So a
    build with one new batch tests that batch; a first build or a --full-refresh tests all.

    Where no such record exists (a table rebuilt whole, like the dimensions, or a view over the
    sources) the placeholder means every row. Tests that compare a model with another one
    (sums_match, row_counts_match) get no filter here (a filter on one side only would make
    them fail): between two models that both hold batches they compare the batches either
    side built last, batch by batch, on both sides (batches_built_last_by_either, below).
    `--vars '{test_all_batches: true}'` tests every row of every model.
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
    {%- if model.test_metadata is defined and model.test_metadata.name in whole_model_tests -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set batches = batches_built_last(relation) -%}
    {{ return('true' if batches is none else batch_id_in(batches)) }}
{% endmacro %}

{#- The batches `relation` built last, sorted, or none where every row is to be read: no record
    (a table rebuilt whole, a view over the sources), a last build that built everything the
    model holds (a first build, a full refresh), `test_all_batches`, or an engine that records
    no batches. -#}
{% macro batches_built_last(relation) %}
    {%- if not execute or target.type not in ['spark', 'glue'] or var('test_all_batches', false) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set record = _last_built_batches(relation) -%}
    {%- if record is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set last_built, built = record -%}
    {%- if last_built | length > 0 and last_built | length == built | unique | list | length -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(last_built | sort) }}
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

{#
    The batches a comparison of two models that both hold `batch_id` (sums_match,
    row_counts_match) must look at: those either side built last. A batch's rows do not change
    once built, on either side, so the comparison made when a batch was built holds until one
    side builds that batch again, and comparing batch by batch is stricter than comparing
    totals (two errors cannot cancel out). A batch one side built and the other skipped is in
    the list, and shows as a difference. none: compare every row (either side keeps no record,
    e.g. a table rebuilt whole; either built everything last, as a first build or a full refresh
    does; `test_all_batches`; an engine that records no batches).
#}
{% macro batches_built_last_by_either(model, compare_model) %}
    {%- set batches = [] -%}
    {%- for relation in [model, compare_model] -%}
        {%- set built_last = batches_built_last(relation) -%}
        {%- if built_last is none -%}
            {{ return(none) }}
        {%- endif -%}
        {%- do batches.extend(built_last) -%}
    {%- endfor -%}
    {{ return(batches | unique | sort | list) }}
{% endmacro %}

{#- A predicate on `batch_id`: one of `batches` (false when there is none). -#}
{% macro batch_id_in(batches) %}
    {{- return(in_list(['batch_id'], batches) if batches else 'false') -}}
{% endmacro %}

{#- The batches of `batches` where `measure` over `model` differs from `compare_measure` over
    `compare_model`: one row per batch, with both values (0 where a side has no row). -#}
{% macro compare_by_batch(measure, model, compare_measure, compare_model, batches, label) %}
with this_side as (
    select batch_id, {{ measure }} as measured
    from {{ model }}
    where {{ batch_id_in(batches) }}
    group by batch_id
),
other_side as (
    select batch_id, {{ compare_measure }} as measured
    from {{ compare_model }}
    where {{ batch_id_in(batches) }}
    group by batch_id
)
select
    coalesce(this_side.batch_id, other_side.batch_id) as batch_id,
    coalesce(this_side.measured, 0) as model_{{ label }},
    coalesce(other_side.measured, 0) as compare_{{ label }}
from this_side
full outer join other_side
    on this_side.batch_id = other_side.batch_id
where coalesce(this_side.measured, 0) <> coalesce(other_side.measured, 0)
{% endmacro %}
