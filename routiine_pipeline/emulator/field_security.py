"""Field-level security of the integration user: hidden fields and read-only fields."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routiine_pipeline.salesforce.schema import SObjectSchema


class FieldSecurityMixin:
    """Per-org overrides of the schema that model what one user may see and write.

    A hidden field behaves as if it did not exist: describe leaves it out and
    SOQL naming it fails with INVALID_FIELD, as Salesforce does.
    """

    lock: threading.RLock

    if TYPE_CHECKING:  # provided by Org

        def schema(self, sobject: str) -> SObjectSchema: ...

    def _init_field_security(self) -> None:
        self._hidden_fields: set[tuple[str, str]] = set()
        self._read_only_fields: set[tuple[str, str]] = set()

    def set_field_visibility(
        self, sobject: str, field: str, visible: bool = False
    ) -> None:
        """Hide a field from the integration user: describe omits it and SOQL naming it fails."""
        key = self._field_key(sobject, field)
        with self.lock:
            if visible:
                self._hidden_fields.discard(key)
            else:
                self._hidden_fields.add(key)

    def set_field_updateable(
        self, sobject: str, field: str, updateable: bool = False
    ) -> None:
        """Make a field read-only (or writable again) for the integration user."""
        key = self._field_key(sobject, field)
        with self.lock:
            if updateable:
                self._read_only_fields.discard(key)
            else:
                self._read_only_fields.add(key)

    def _field_key(self, sobject: str, field: str) -> tuple[str, str]:
        schema = self.schema(sobject)
        spec = schema.field_named(field)
        if spec is None:
            raise KeyError(f"no field {field!r} on {schema.name}")
        return schema.name, spec.name

    def is_field_visible(self, sobject: str, field: str) -> bool:
        with self.lock:
            return (sobject, field) not in self._hidden_fields

    def is_field_updateable(self, sobject: str, field: str) -> bool:
        """Tell whether the integration user may write the field: schema flag and overrides."""
        spec = self.schema(sobject).field_named(field)
        with self.lock:
            return (
                bool(spec and spec.updateable)
                and (sobject, field) not in self._read_only_fields
            )
