"""Incremental extraction: SystemModstamp windows, paging, and atomic commits."""
