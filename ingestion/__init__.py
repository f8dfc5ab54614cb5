"""Land raw Walmart-style sales CSV in the Bronze layer and drive the dbt lakehouse around it."""
