{#
    The row-level rules of Silver: every rule the real Walmart data obeys. Each entry is a reason
    name and the condition under which a staged row breaks it. Value sets come from the project
    vars, which the data tests read too.
#}
{% macro sales_validation_rules() %}
    {{ return([
        ('missing_line_number', 'source_line_number is null'),
        ('invalid_customer_id', 'customer_id is null or customer_id not between '
            ~ var('customer_id_range')[0] ~ ' and ' ~ var('customer_id_range')[1]),
        ('invalid_product_id', "product_id is null or not product_id rlike '" ~ var('product_id_pattern') ~ "'"),
        ('invalid_gender', 'gender is null or gender not in (' ~ _quoted(var('valid_genders')) ~ ')'),
        ('invalid_age_band', 'age_band is null or age_band not in (' ~ _quoted(var('valid_age_bands')) ~ ')'),
        ('invalid_occupation_code', 'occupation_code is null or occupation_code not between '
            ~ var('occupation_code_range')[0] ~ ' and ' ~ var('occupation_code_range')[1]),
        ('invalid_city_category', 'city_category is null or city_category not in ('
            ~ _quoted(var('valid_city_categories')) ~ ')'),
        ('invalid_years_in_city', 'years_in_city is null or years_in_city not in ('
            ~ _quoted(var('valid_years_in_city')) ~ ')'),
        ('invalid_marital_status', 'marital_status_code is null or marital_status_code not in (0, 1)'),
        ('married_minor', "age_band = '0-17' and marital_status_code = 1"),
        ('invalid_product_category', 'product_category is null or product_category not between '
            ~ var('product_category_range')[0] ~ ' and ' ~ var('product_category_range')[1]),
        ('invalid_purchase_amount', 'purchase_amount is null or purchase_amount <= 0'),
    ]) }}
{% endmacro %}

{#- A string listing every rule a row breaks ('; '-separated), or null for a valid row. -#}
{% macro rejection_reasons() %}
    nullif(concat_ws('; '
    {%- for name, broken in sales_validation_rules() %},
        case when {{ broken }} then '{{ name }}' end
    {%- endfor %}
    ), '')
{% endmacro %}
