{#
    Lists that grow with the history (batch ids, their ingest dates, Bronze partitions) never go
    into one statement whole. Glue's RunStatement takes at most 68,000 characters of code, and a
    literal list of every batch passes that at about 1,000 batches (a pair `('<16 hex>', date
    '<day>')` is 40 characters). var `batch_list_max_chars` bounds the characters of one list in
    one statement; past it:

    - `in_list`: the values go into a temporary view, made in statements of that size, and the
      predicate becomes a semi-join on it. Short lists stay literals, which Spark and Iceberg
      prune partitions and files with at planning time: the usual run (a few new batches) keeps
      its pruning; a long list is a first build or a catch-up, which reads most batches anyway.
    - `set_listed_properties`: a table property is split into numbered chunks (`<key>`,
      `<key>.1`, ...), set in as few `alter table` statements as the budget allows;
      `listed_property` reads them back in order.
#}

{% macro batch_list_max_chars() %}
    {{ return(var('batch_list_max_chars') | int) }}
{% endmacro %}

{#- Split `items` (strings) into runs whose `sep`-joined length stays within the budget; an item
    longer than the budget is a run of its own. -#}
{% macro bounded_chunks(items, sep=', ') %}
    {%- set chunks = [] -%}
    {%- set current = namespace(items=[], chars=0) -%}
    {%- for item in items -%}
        {%- if current.items and current.chars + (item | length) + (sep | length) > batch_list_max_chars() -%}
            {%- do chunks.append(current.items) -%}
            {%- set current.items = [] -%}
            {%- set current.chars = 0 -%}
        {%- endif -%}
        {%- set current.items = current.items + [item] -%}
        {%- set current.chars = current.chars + (item | length) + (sep | length) -%}
    {%- endfor -%}
    {%- if current.items -%}
        {%- do chunks.append(current.items) -%}
    {%- endif -%}
    {{ return(chunks) }}
{% endmacro %}

{#- `(columns) in (rows)` as SQL. rows: values (one column) or lists of values; types: the
    literal type of each column ('string' or 'date'). -#}
{% macro in_list(columns, rows, types=none) %}
    {%- set types = types or ['string'] * (columns | length) -%}
    {%- set literals = [] -%}
    {%- for row in rows -%}
        {%- set values = [row] if row is string else row -%}
        {%- set rendered = [] -%}
        {%- for value in values -%}
            {%- do rendered.append(("date '" if types[loop.index0] == 'date' else "'") ~ value ~ "'") -%}
        {%- endfor -%}
        {%- do literals.append(rendered | join(', ') if columns | length == 1 else '(' ~ rendered | join(', ') ~ ')') -%}
    {%- endfor -%}
    {%- set target = columns[0] if columns | length == 1 else '(' ~ columns | join(', ') ~ ')' -%}
    {%- set chunks = bounded_chunks(literals) -%}
    {%- if chunks | length <= 1 -%}
        {{ return(target ~ ' in (' ~ literals | join(', ') ~ ')') }}
    {%- endif -%}
    {%- set view = 'lakehouse_list_' ~ local_md5(columns | join(',') ~ ':' ~ literals | join(','))[:16] -%}
    {%- set parts = [] -%}
    {%- for chunk in chunks -%}
        {%- set part = view ~ '_' ~ loop.index0 -%}
        {%- do run_statements('create or replace temporary view ' ~ part ~ ' as select * from values '
            ~ (chunk | join(', ') if columns | length > 1 else '(' ~ chunk | join('), (') ~ ')')
            ~ ' as t(' ~ columns | join(', ') ~ ')') -%}
        {%- do parts.append('select * from ' ~ part) -%}
    {%- endfor -%}
    {%- do run_statements('create or replace temporary view ' ~ view ~ ' as ' ~ parts | join(' union all ')) -%}
    {{ return(target ~ ' in (select ' ~ columns | join(', ') ~ ' from ' ~ view ~ ')') }}
{% endmacro %}

{#- `show tblproperties` of `relation` as a dict, asked once per relation per dbt command and kept
    in the graph; `set_listed_properties` keeps the copy current. -#}
{% macro table_properties(relation) %}
    {%- set key = (relation.schema ~ '.' ~ relation.identifier) | lower -%}
    {%- if '_lakehouse_table_properties' not in graph -%}
        {%- do graph.update({'_lakehouse_table_properties': {}}) -%}
    {%- endif -%}
    {%- set cache = graph['_lakehouse_table_properties'] -%}
    {%- if key not in cache -%}
        {%- set found = {} -%}
        {%- for row in run_query('show tblproperties ' ~ relation) -%}
            {%- do found.update({row[0]: row[1]}) -%}
        {%- endfor -%}
        {%- do cache.update({key: found}) -%}
    {%- endif -%}
    {{ return(cache[key]) }}
{% endmacro %}

{#- The list kept under `key` (in chunks), empty when the table has none. -#}
{% macro listed_property(properties, key) %}
    {%- set values = namespace(items=[], done=false) -%}
    {%- for index in range(properties | length) if not values.done -%}
        {%- set chunk_key = key if index == 0 else key ~ '.' ~ index -%}
        {%- if chunk_key in properties -%}
            {%- set values.items = values.items + (properties[chunk_key].split(',') | reject('equalto', '') | list) -%}
        {%- else -%}
            {%- set values.done = true -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(values.items) }}
{% endmacro %}

{#- The statements that set each list in `lists` (key -> values) on `relation`: one `alter table`
    as long as it stays within the budget, writing only the chunks that changed and dropping
    chunks a shorter list no longer uses; the cached properties are updated to match. -#}
{% macro set_listed_properties(relation, lists) %}
    {%- set properties = table_properties(relation) -%}
    {%- set assignments = [] -%}
    {%- set stale = [] -%}
    {%- for key, values in lists.items() -%}
        {%- set chunks = bounded_chunks(values, ',') -%}
        {%- for chunk in (chunks or [[]]) -%}
            {%- set chunk_key = key if loop.index0 == 0 else key ~ '.' ~ loop.index0 -%}
            {%- set value = chunk | join(',') -%}
            {%- if properties.get(chunk_key) != value -%}
                {%- do assignments.append("'" ~ chunk_key ~ "' = '" ~ value ~ "'") -%}
                {%- do properties.update({chunk_key: value}) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- for index in range((chunks | length) or 1, properties | length + 1) -%}
            {%- if (key ~ '.' ~ index) in properties -%}
                {%- do stale.append(key ~ '.' ~ index) -%}
                {%- do properties.pop(key ~ '.' ~ index) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set statements = [] -%}
    {%- for group in bounded_chunks(assignments) -%}
        {%- do statements.append('alter table ' ~ relation ~ ' set tblproperties (' ~ group | join(', ') ~ ')') -%}
    {%- endfor -%}
    {%- if stale -%}
        {%- do statements.append('alter table ' ~ relation ~ " unset tblproperties if exists ('"
            ~ stale | join("', '") ~ "')") -%}
    {%- endif -%}
    {{ return(statements or ['select 1']) }}
{% endmacro %}

{#- The values as a comma-separated list of literals, e.g. `'M', 'F'` or `date '2026-01-01'`
    (the validation rules' value sets). -#}
{% macro _quoted(values, literal_type='') %}
    {%- set literals = [] -%}
    {%- for value in values | sort -%}
        {%- do literals.append((literal_type ~ " '" ~ value ~ "'") | trim) -%}
    {%- endfor -%}
    {{ return(literals | join(', ')) }}
{% endmacro %}
