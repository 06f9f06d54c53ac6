"""The control store: tenants, encrypted tokens, API usage, intervals, notifications."""
