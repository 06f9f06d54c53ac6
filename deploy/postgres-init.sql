-- The control store (tenants, encrypted tokens, API-usage ledger, write-back
-- retries, notifications) lives in its own database beside Dagster's.
CREATE DATABASE routiine OWNER dagster;
