-- Warn-level: customers whose rows disagree on a demographic attribute. dim_customers keeps
-- the latest row's values for them; this test says how many there are.
{{ config(severity='warn', tags=['lake']) }}

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
