"""Per-tenant DuckDB storage: raw tables, watermarks and the helpers to open them."""
