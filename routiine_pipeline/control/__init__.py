"""The control store: tenants, encrypted tokens, API usage, intervals, notifications."""

from routiine_pipeline.control.store import load_tenant_mapping

__all__ = ["load_tenant_mapping"]
