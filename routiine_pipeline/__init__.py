"""Routiine: deal intelligence beside Salesforce, orchestrated by Dagster."""
