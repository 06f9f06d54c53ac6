"""The connect page served by `routiine serve`: tenants, the OAuth connect flow and the mapping editor."""

from routiine_pipeline.web.app import create_app

__all__ = ["create_app"]
