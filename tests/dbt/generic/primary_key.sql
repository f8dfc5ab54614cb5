{#- The primary key: no key column null and no two rows with the same key, in one query (dbt's
    unique + not_null pair as one aggregation, like dbt_constraints' primary_key test). On the
    lake every test node costs a Spark job and dbt's per-node work, about half a second whatever
    the rows, so a check that one scan can make is one test. On a column
    (`data_tests: [primary_key]`) the key is that column; on a model, `columns`. Each failing key
    says what is wrong with it in `failed_check`: 'duplicate key', or 'null <column>' for each
    null key column (macros/combined_tests.sql). -#}
{% test primary_key(model, column_name=none, columns=none) %}
{%- set key = columns or [column_name] -%}
{%- set nulls = null_checks(key) -%}
select
    {{ key | join(', ') }},
    count(*) as rows_with_key,
    case
        when {{ any_check_fails(nulls) }} then {{ failed_check_labels(nulls) }}
        else 'duplicate key'
    end as failed_check
from {{ model }}
group by {{ key | join(', ') }}
having count(*) > 1 or {{ any_check_fails(nulls) }}
{% endtest %}
