{#
    Which Bronze batches an incremental lake model reads on this run, as a SQL predicate on
    `batch_id` / `ingest_date`, and the record of which batches a model holds.

    The committed batches come from the ingestion ledger (`stg_walmart__batches`, a few KB of
    JSON), and the batches a model already holds from a table property the model's post-hook
    writes (`record_built_batches`): deciding what is new reads no table data at all. (It used to
    read `select distinct batch_id` of the model and of its upstream model: two scans of all
    history on every run, 14 s of a no-op rebuild at 5.5 M rows.) A batch with no row for a model
    (every row rejected, for Gold) is recorded as built all the same: it was read.

    - First build or full refresh: every committed batch.
    - merge (Iceberg): the committed batches the model has not recorded. A batch merged by a run
      that died before its post-hook is read again; the merge on the unique key makes that exact.
    - insert_overwrite (Hive Parquet): whole ingest_date partitions are replaced, so every batch of
      each date that has a new batch is read again.

    The batch ids are rendered as literals (not a subquery) so that Spark prunes Bronze partitions
    and Iceberg files at planning time, as long as the list fits `batch_list_max_chars` (a var,
    characters); a longer one (a first build of a long history, a catch-up after an outage) goes
    into a temporary view built in bounded statements (`in_list`, macros/batch_lists.sql): Glue's
    RunStatement takes at most 68,000 characters, and a literal list of every batch passes that
    at about 1,000 batches. The recorded batches are kept in chunked properties the same way. With `match_ingest_date`, a row must also sit under the
    ingest date its batch was committed with: parts a crashed landing left under another date
    are never read (Silver reads Bronze this way).
#}

{% macro built_batches_property() %}{{ return('lakehouse.built_batches') }}{% endmacro %}

{#- [batch_id, ingest_date, landed_at] of every committed batch, in batch order (batch_order_key:
    ingest date, commit time, id; the time as a sortable string), as the ledger was when this
    dbt command first asked: read once per command and kept in the graph (one dict for the whole
    invocation), so every model, and each model's SQL and post-hook, see the same batches even
    when a file lands mid-build. The lake's on-run-start asks first, with the Bronze ledger table
    it has just refreshed (`ledger`), to register the batches' partitions: one read of the ledger
    per build. Otherwise (a command without the hook) the staging view over it is read. -#}
{% macro committed_batches(ledger=none) %}
    {%- if '_lakehouse_committed_batches' not in graph -%}
        {#- the casts make the raw ledger (string dates) and its staging view read alike -#}
        {%- set rows = run_query(
            "select batch_id, cast(cast(ingest_date as date) as string) as ingest_date,"
            ~ " date_format(cast(ingested_at as timestamp), 'yyyy-MM-dd HH:mm:ss.SSSSSS')"
            ~ " as landed_at from " ~ (ledger or ref('stg_walmart__batches')) ~ ' order by 2, 3, 1'
        ) -%}
        {%- do graph.update({'_lakehouse_committed_batches': rows.rows | map('list') | list}) -%}
    {%- endif -%}
    {{ return(graph['_lakehouse_committed_batches']) }}
{% endmacro %}

{#- The batch ids `relation` has recorded as built (empty when it has no record). -#}
{% macro recorded_batches(relation) %}
    {{ return(listed_property(table_properties(relation), built_batches_property())) }}
{% endmacro %}

{#- The committed batches the model reads from has built (all committed batches when it reads
    Bronze): see `batches_from` in lake_incremental_config. -#}
{% macro available_batches() %}
    {%- set upstream = config.get('meta', {}).get('batches_from') -%}
    {%- if not upstream -%}
        {{ return(committed_batches()) }}
    {%- endif -%}
    {%- set built = recorded_batches(ref(upstream)) -%}
    {%- set available = [] -%}
    {%- for pair in committed_batches() if pair[0] in built -%}
        {%- do available.append(pair) -%}
    {%- endfor -%}
    {{ return(available) }}
{% endmacro %}

{#- The available batches `relation` has not recorded (all of them when it is not incremental). -#}
{% macro unrecorded_batches(relation, incremental) %}
    {%- set committed = available_batches() -%}
    {%- if not incremental -%}
        {{ return(committed) }}
    {%- endif -%}
    {%- set held = recorded_batches(relation) -%}
    {%- set new_pairs = [] -%}
    {%- for pair in committed if pair[0] not in held -%}
        {%- do new_pairs.append(pair) -%}
    {%- endfor -%}
    {{ return(new_pairs) }}
{% endmacro %}

{% macro incremental_batch_filter(match_ingest_date=false, ordered=false) %}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set new_pairs = unrecorded_batches(this, is_incremental()) -%}
    {%- if ordered and is_incremental() and new_pairs and _lands_out_of_order(new_pairs) -%}
        {#- a model whose rows depend on the order of batches (first purchases) reads every
            batch again when one arrives older than a batch it holds -#}
        {%- set every_batch = available_batches() -%}
        {%- do _note_read_batches(every_batch, match_ingest_date) -%}
        {%- do _note_rows_may_change() -%}
        {{ return(_batch_predicate(every_batch, none, match_ingest_date)) }}
    {%- endif -%}
    {%- if is_incremental() and config.get('incremental_strategy') == 'insert_overwrite' -%}
        {%- set dates = new_pairs | map(attribute=1) | unique | list -%}
        {{ return(_batch_predicate(available_batches(), dates, match_ingest_date)) }}
    {%- endif -%}
    {%- do _note_read_batches(new_pairs, match_ingest_date) -%}
    {{ return(_batch_predicate(new_pairs, none, match_ingest_date)) }}
{% endmacro %}

{#- The batches (and their dates) this model's new rows can belong to on this run, for its merge
    (`read_batches`): those its filter read, when every filter of the model keeps rows to their
    batch's date (`match_ingest_date`); otherwise unknown (none). -#}
{% macro _note_read_batches(pairs, match_ingest_date) %}
    {%- set noted = graph.get('_lakehouse_read_batches') -%}
    {%- if noted is none -%}
        {%- set noted = {} -%}
        {%- do graph.update({'_lakehouse_read_batches': noted}) -%}
    {%- endif -%}
    {%- set key = model.unique_id -%}
    {%- if not match_ingest_date or (key in noted and noted[key] is none) -%}
        {%- do noted.update({key: none}) -%}
    {%- else -%}
        {%- set batches = noted.get(key) or {} -%}
        {%- for pair in pairs -%}
            {%- do batches.update({pair[0]: pair[1]}) -%}
        {%- endfor -%}
        {%- do noted.update({key: batches}) -%}
    {%- endif -%}
{% endmacro %}

{#- A row of a batch depends on that batch alone, or for the first-purchase models on the
    batches before it too: as long as batches arrive in order, no row a model holds changes,
    and its merge only adds rows (`rows_only_added`). A batch that lands before one the model
    holds re-reads every batch and may change held rows: the filter notes it here. -#}
{% macro _note_rows_may_change() %}
    {%- if '_lakehouse_rows_may_change' not in graph -%}
        {%- do graph.update({'_lakehouse_rows_may_change': []}) -%}
    {%- endif -%}
    {%- do graph['_lakehouse_rows_may_change'].append(model.unique_id) -%}
{% endmacro %}

{#- Whether this run's merge of the running model only adds rows (see _note_rows_may_change). -#}
{% macro rows_only_added() %}
    {{ return(model.unique_id not in (graph.get('_lakehouse_rows_may_change') or [])) }}
{% endmacro %}

{#- batch_id -> ingest_date of the batches noted by `_note_read_batches` for the running model, or
    none when unknown. -#}
{% macro read_batches() %}
    {{ return((graph.get('_lakehouse_read_batches') or {}).get(model.unique_id)) }}
{% endmacro %}

{#- Whether a new batch sorts before a batch `this` holds, in batch order (batch_order_key): a
    backfill under an older date; a second batch of the same day comes after the first. -#}
{% macro _lands_out_of_order(new_pairs) %}
    {%- set recorded = recorded_batches(this) -%}
    {%- set held = [] -%}
    {%- for batch in committed_batches() if batch[0] in recorded -%}
        {%- do held.append(_batch_order(batch)) -%}
    {%- endfor -%}
    {%- if not held -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set newest_held = held | max -%}
    {%- for batch in new_pairs if _batch_order(batch) < newest_held -%}
        {{ return(true) }}
    {%- endfor -%}
    {{ return(false) }}
{% endmacro %}

{% macro _batch_order(batch) %}{{ return(batch[1] ~ '/' ~ batch[2] ~ '/' ~ batch[0]) }}{% endmacro %}

{#
    Post-hook of every model that reads with `incremental_batch_filter`: record the batches the
    model now holds, i.e. the committed batches it had not recorded, which its SQL read (the same
    ledger snapshot: `committed_batches`). `lakehouse.last_built_batches` keeps what this run
    added, for the row-level tests (macros/test_scope.sql). Nothing new, nothing written: a no-op
    run leaves the table's metadata untouched.
#}
{% macro record_built_batches() %}
    {%- if not execute -%}
        {{ return('select 1') }}
    {%- endif -%}
    {#- a full refresh replaces the table, and Iceberg keeps a replaced table's properties: start
        the record afresh, or the stale record would hide every batch just rebuilt -#}
    {%- set held = recorded_batches(this) if is_incremental() else [] -%}
    {%- set added = unrecorded_batches(this, is_incremental()) | map(attribute=0) | sort | list -%}
    {%- if added | length == 0 -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set statements = set_listed_properties(this, {
        built_batches_property(): held + added,
        'lakehouse.last_built_batches': added,
    }) -%}
    {%- if statements | length > 1 -%}
        {#- a record longer than one statement (a long history): all but the last run here -#}
        {%- do run_statements(statements[:-1] | join(';\n')) -%}
    {%- endif -%}
    {{ return(statements[-1]) }}
{% endmacro %}

{#- pairs: committed_batches() rows; ingest_dates: whole partitions to re-read, or none. -#}
{% macro _batch_predicate(pairs, ingest_dates, match_ingest_date) %}
    {%- if pairs | length == 0 or (ingest_dates is not none and ingest_dates | length == 0) -%}
        {{ return('false') }}
    {%- endif -%}
    {%- set predicate = in_list(['batch_id'], pairs | map(attribute=0) | unique | sort | list) -%}
    {%- if match_ingest_date -%}
        {#- the plain `in` on the partition column is what Iceberg and Spark prune partitions with;
            the pairs then keep each batch to its own date -#}
        {%- set dates = pairs | map(attribute=1) | unique | sort | list -%}
        {%- set predicate = predicate ~ ' and ' ~ in_list(['ingest_date'], dates, ['date'])
            ~ ' and ' ~ in_list(['batch_id', 'ingest_date'], _id_date_pairs(pairs), ['string', 'date']) -%}
    {%- endif -%}
    {%- if ingest_dates is not none -%}
        {%- set predicate = predicate ~ ' and '
            ~ in_list(['ingest_date'], ingest_dates | unique | sort | list, ['date']) -%}
    {%- endif -%}
    {{ return(predicate) }}
{% endmacro %}

{% macro _id_date_pairs(batches) %}
    {%- set pairs = [] -%}
    {%- for batch in batches -%}
        {%- do pairs.append([batch[0], batch[1]]) -%}
    {%- endfor -%}
    {{ return(pairs | sort) }}
{% endmacro %}
