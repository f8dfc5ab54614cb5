{#- Every column of `values` ({column: [accepted values]}) holds only its accepted values: dbt's
    accepted_values on several columns of one model as one scan (one test node: see
    primary_key.sql for why that matters on the lake). A null is accepted, as dbt's
    accepted_values accepts it. Each failing row says which columns hold a value outside their set
    in `failed_check` ('unaccepted <column>', comma-separated). -#}
{% test accepted_values_by_column(model, values) %}
{%- set outside = {} -%}
{%- for column, accepted in values.items() -%}
    {%- set quoted = [] -%}
    {%- for value in accepted -%}{%- do quoted.append("'" ~ value ~ "'") -%}{%- endfor -%}
    {%- do outside.update({column: column ~ ' not in (' ~ quoted | join(', ') ~ ')'}) -%}
{%- endfor %}
select
    *,
    concat_ws(', ', {% for column, predicate in outside.items() -%}
        case when {{ predicate }} then 'unaccepted {{ column }}' end
        {%- if not loop.last %}, {% endif %}
    {%- endfor %}) as failed_check
from {{ model }}
where {{ outside.values() | join(' or ') }}
{% endtest %}
