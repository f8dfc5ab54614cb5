{#- Every column of `values` ({column: [accepted values]}) holds only its accepted values: dbt's
    accepted_values on several columns of one model as one scan (one test node: see
    primary_key.sql for why that matters on the lake). A null is accepted, as dbt's
    accepted_values accepts it. Each failing row says which columns hold a value outside their set
    in `failed_check` ('unaccepted <column>', comma-separated; macros/combined_tests.sql). -#}
{% test accepted_values_by_column(model, values) %}
{%- set checks = [] -%}
{%- for column, accepted in values.items() -%}
    {%- set quoted = [] -%}
    {%- for value in accepted -%}{%- do quoted.append("'" ~ value ~ "'") -%}{%- endfor -%}
    {%- do checks.append(('unaccepted ' ~ column, column ~ ' not in (' ~ quoted | join(', ') ~ ')')) -%}
{%- endfor -%}
select
    *,
    {{ failed_check_labels(checks) }} as failed_check
from {{ model }}
where {{ any_check_fails(checks) }}
{% endtest %}
