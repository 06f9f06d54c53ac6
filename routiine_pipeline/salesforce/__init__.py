"""Salesforce REST client, SOQL building and record shapes, free of Dagster."""
