-- Customers whose rows disagree on a demographic attribute. No real customer file does that
-- (the real 29,116-row head: 0 of 3,908 customers), and the generator keeps a customer's
-- demographics a function of its User_ID, so this is an error at the first conflict.
-- dim_customers would keep the latest row's values and hide it.
-- The allowance exists for one case only: a lake that mixes the real head with generated files
-- (the end-to-end story), whose User_IDs collide with real customers; that story sets
-- LAKEHOUSE_DEMOGRAPHIC_CONFLICTS_ALLOWED to the count it computes from its CSV files and checks
-- the count this test reports.
--
-- Grouping all of Silver by customer with six distinct counts made this the dearest test of an
-- incremental build (2 s a cycle at 550k rows, and it grows with history). A conflict lies
-- either within one batch or between two batches, so it is found in two cheap places:
-- - within a batch: the rows of the batches Silver built last, as for the row-level tests (a
--   built batch's rows do not change; all rows on a first build, a full refresh, or with
--   --vars '{test_all_batches: true}'; macros/test_scope.sql);
-- - between batches: int_customer_batch_sales keeps one demographic profile per customer and
--   batch (a valid row has every demographic, so two profiles differ exactly when a value does).
-- The conflicting customers' rows are then counted in full, so a failure reads as before.
{{ config(
    tags=['lake'],
    severity='error',
    warn_if='>0',
    error_if='>' ~ env_var('LAKEHOUSE_DEMOGRAPHIC_CONFLICTS_ALLOWED', '0'),
) }}

{%- set differs = [] %}
{%- for column in [
    'gender', 'age_band', 'occupation_code', 'city_category', 'years_in_city', 'is_married',
] %}
    {%- do differs.append('min(' ~ column ~ ') <> max(' ~ column ~ ')') %}
{%- endfor %}

with built_last as (

    select *
    from {{ ref('slv_sales') }}
    where {{ _new_batches_predicate(ref('slv_sales')) }}

),

split_within_a_batch as (

    select customer_id
    from built_last
    group by customer_id, batch_id
    having {{ differs | join(' or ') }}

),

split_between_batches as (

    select customer_id
    from {{ ref('int_customer_batch_sales') }}
    group by customer_id
    having count(distinct profile) > 1

),

conflicting as (

    select customer_id from split_within_a_batch
    union
    select customer_id from split_between_batches

)

select
    sales.customer_id,
    count(distinct sales.gender) as genders,
    count(distinct sales.age_band) as age_bands,
    count(distinct sales.occupation_code) as occupation_codes,
    count(distinct sales.city_category) as city_categories,
    count(distinct sales.years_in_city) as years_in_city_values,
    count(distinct sales.is_married) as marital_statuses
from {{ ref('slv_sales') }} as sales
left semi join conflicting
    on sales.customer_id = conflicting.customer_id
group by sales.customer_id
