-- Customers whose rows disagree on a demographic attribute. No real customer file does that
-- (the real 29,116-row head: 0 of 3,908 customers), and the generator keeps a customer's
-- demographics a function of its User_ID, so this is an error at the first conflict.
-- dim_customers would keep the latest row's values and hide it.
-- The allowance exists for one case only: a lake that mixes the real head with generated files
-- (the end-to-end story), whose User_IDs collide with real customers; that story sets
-- LAKEHOUSE_DEMOGRAPHIC_CONFLICTS_ALLOWED to the count it computes from its CSV files and checks
-- the count this test reports.
{{ config(
    tags=['lake'],
    severity='error',
    warn_if='>0',
    error_if='>' ~ env_var('LAKEHOUSE_DEMOGRAPHIC_CONFLICTS_ALLOWED', '0'),
) }}

select
    customer_id,
    count(distinct gender) as genders,
    count(distinct age_band) as age_bands,
    count(distinct occupation_code) as occupation_codes,
    count(distinct city_category) as city_categories,
    count(distinct years_in_city) as years_in_city_values,
    count(distinct is_married) as marital_statuses
from {{ ref('slv_sales') }}
group by customer_id
having
    count(distinct gender) > 1
    or count(distinct age_band) > 1
    or count(distinct occupation_code) > 1
    or count(distinct city_category) > 1
    or count(distinct years_in_city) > 1
    or count(distinct is_married) > 1
