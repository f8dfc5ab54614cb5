{#
    Overrides dbt-spark's merge for the local lake.

    - When the incremental source is empty (no new batch), run no MERGE at all. Iceberg commits a
      new (empty) snapshot for a MERGE that changes nothing, so a rebuild on unchanged Bronze would
      still move every table's metadata; with this, it leaves the lake exactly as it was.
    - The merge looks only at the target partitions the new rows fall in: a MERGE whose ON clause
      holds only the unique key makes Spark scan every file of the target to find matches (all
      history, for one new batch). Every incremental lake model is partitioned by `ingest_date`
      and its unique key holds the batch (sale_id embeds the batch id; the state models key on
      (key, batch_id)), and a batch lives under one ingest date, so a row can only match within
      its own partition, and within it only a row of its own batch: `merge_partition_predicates`
      adds `DBT_INTERNAL_DEST.ingest_date in (<dates of the new rows>)` and
      `DBT_INTERNAL_DEST.batch_id in (<their batches>)` to the ON clause, which Spark pushes down
      to Iceberg as filters on the target scan (partitions, then files by their batch_id bounds).
    - When no row the model holds can change on this run (`rows_only_added`: batches arrived in
      order), the merge only inserts the rows whose key the target lacks. Spark plans such a
      MERGE as an anti join and an append: no pass over the target to find the files to
      rewrite, no rewrite. A batch merged by a run that died before recording it is read again
      and adds nothing, as the full merge's update would have changed nothing.

    dbt-glue has its own merge: macros/glue_merge.sql applies the same rules there.
#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {%- set pruning = merge_partition_predicates(source) -%}
    {%- if pruning is none -%}
        {{ log('No new rows for ' ~ target ~ ': nothing to merge', info=False) }}
        select 'no new rows' as merge_skipped
    {%- elif rows_only_added() -%}
        {{ insert_new_keys_sql(target, source, unique_key, (incremental_predicates or []) + pruning) }}
    {%- else -%}
        {{ dbt.spark__get_merge_sql(target, source, unique_key, dest_columns, (incremental_predicates or []) + pruning) }}
    {%- endif -%}
{% endmacro %}

{#- A MERGE that inserts the rows of `source` whose `unique_key` (a column or a list) `target`
    lacks and touches no row it holds. `columns`: insert these by name (dbt-glue's way) rather
    than `insert *`. -#}
{% macro insert_new_keys_sql(target, source, unique_key, predicates, columns=none) %}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set conditions = [] -%}
    {%- for key in keys -%}
        {%- do conditions.append('DBT_INTERNAL_SOURCE.' ~ key ~ ' = DBT_INTERNAL_DEST.' ~ key) -%}
    {%- endfor -%}
    merge into {{ target }} as DBT_INTERNAL_DEST
    using {{ source }} as DBT_INTERNAL_SOURCE
    on {{ (conditions + predicates) | join(' and ') }}
    {% if columns -%}
    when not matched then insert ({{ columns | join(', ') }})
        values (DBT_INTERNAL_SOURCE.{{ columns | join(', DBT_INTERNAL_SOURCE.') }})
    {%- else -%}
    when not matched then insert *
    {%- endif %}
{%- endmacro %}

{#- The predicates that keep a merge to the target partitions of the new rows in `source`
    (config meta `merge_within`: the partition column the unique key decides), [] when the model
    declares none, none when `source` has no row.

    Where the model's filter noted the batches it read (`read_batches`), the merge is also kept
    to those batches' files: every unique key of a lake model holds its batch (sale_id embeds the
    batch id; the state models key on (key, batch_id)), so a new row can only match a row of its
    own batch. The partition filter alone prunes nothing when batches share a day (the watch lands
    every micro-batch under today's date): the insert-only MERGE then read every key of that day to
    find none. `batch_id in (...)` is a filter on the target only, which Spark pushes to Iceberg,
    and Iceberg skips each data file whose batch_id bounds exclude it (an incremental commit
    writes files of its own batch alone). -#}
{% macro merge_partition_predicates(source) %}
    {%- set column = config.get('meta', {}).get('merge_within') -%}
    {%- if not column -%}
        {%- set any_row = run_query('select 1 from ' ~ source ~ ' limit 1') -%}
        {{ return(none if any_row.rows | length == 0 else []) }}
    {%- endif -%}
    {#- the dates of the batches the model's filter read, when it noted them: asking the source
        for its distinct dates ran the whole model query once more before the MERGE ran it (the
        first-purchase models' join with all of fct_sales, twice per build) -#}
    {%- set noted = read_batches() if column == 'ingest_date' else none -%}
    {%- set values = noted.values() | unique | list if noted is not none else
        run_query('select distinct cast(' ~ column ~ ' as string) from ' ~ source).columns[0].values() -%}
    {%- if values | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set dates = [] -%}
    {%- for value in values | sort -%}
        {%- do dates.append("date '" ~ value ~ "'") -%}
    {%- endfor -%}
    {#- a MERGE condition cannot hold a subquery: a list too long for one statement (a catch-up
        of years of days) merges without pruning -#}
    {%- if bounded_chunks(dates) | length > 1 -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set predicates = ['DBT_INTERNAL_DEST.' ~ column ~ ' in (' ~ dates | join(', ') ~ ')'] -%}
    {%- if noted is not none -%}
        {%- set ids = [] -%}
        {%- for batch_id in noted.keys() | sort -%}
            {%- do ids.append("'" ~ batch_id ~ "'") -%}
        {%- endfor -%}
        {%- if bounded_chunks(ids) | length == 1 -%}
            {%- do predicates.append('DBT_INTERNAL_DEST.batch_id in (' ~ ids | join(', ') ~ ')') -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(predicates) }}
{% endmacro %}
