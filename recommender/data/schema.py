"""``schema.toml``: column roles and the placeholders that mean missing."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recommender.columns import Files, Role
from recommender.errors import DataError


@dataclass(frozen=True)
class Schema:
    """Column role overrides and missing-value placeholders.

    Attributes:
        roles: column name -> role (``categorical``, ``numeric``, ``text``, ``ignore``,
            ``leaky``).
        missing: strings read as a missing value (besides the empty cell).
    """

    roles: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form (inverse of :meth:`from_dict`)."""
        return {"columns": dict(self.roles), "missing": {"values": list(self.missing)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Build a schema from the parsed TOML (or JSON) tables, validating every entry.

        Raises:
            DataError: an unknown role, or a table of the wrong shape.
        """
        columns = data.get("columns", {})
        if not isinstance(columns, dict):
            raise DataError("[columns] must be a table of name = role", file=Files.SCHEMA)
        roles: dict[str, str] = {}
        for name, role in columns.items():
            if not isinstance(role, str) or role.lower() not in Role.ALL:
                raise DataError(
                    f"role {role!r} is not one of {', '.join(Role.ALL)}",
                    file=Files.SCHEMA,
                    column=str(name),
                )
            roles[str(name)] = role.lower()
        missing = data.get("missing", {})
        values = missing.get("values", []) if isinstance(missing, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DataError("[missing] values must be a list of strings", file=Files.SCHEMA)
        return cls(roles=roles, missing=tuple(values))


def load_schema(folder: Path) -> Schema:
    """Read ``schema.toml`` from ``folder``; an absent file gives the empty schema.

    Raises:
        DataError: the file is not valid TOML or holds an unknown role.
    """
    path = folder / Files.SCHEMA
    if not path.is_file():
        return Schema()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"is not valid TOML ({exc})", file=Files.SCHEMA) from None
    return Schema.from_dict(data)
