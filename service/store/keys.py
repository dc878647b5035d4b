"""API keys: a random secret shown once, stored as its sha256, with one role."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import Connection, insert, select

from service.store.models import ID_LENGTH, ApiKey

ROLES = ("admin", "router", "marketer")
KEY_PREFIX = "lr_"
_REP_ROLE = re.compile(rf"^rep:(?P<rep>[^\x00-\x1f]{{1,{ID_LENGTH}}})$")


def validate_role(role: str) -> str:
    """Return ``role`` if it is ``admin``, ``router``, ``marketer`` or ``rep:REP_ID``.

    Raises:
        ValueError: any other role, naming the allowed ones.
    """
    if role in ROLES or _REP_ROLE.match(role):
        return role
    raise ValueError(f"unknown role '{role}': use admin, router, marketer or rep:REP_ID")


def hash_key(secret: str) -> str:
    """The sha256 hex digest under which a key is stored (the secret has 256 random bits)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def insert_key(conn: Connection, role: str) -> str:
    """Create a key with ``role`` and return its secret (the only time it is visible).

    Raises:
        ValueError: ``role`` is not a valid role.
    """
    role = validate_role(role)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(insert(ApiKey).values(key_hash=hash_key(secret), prefix=secret[:10], role=role))
    return secret


def role_of(conn: Connection, secret: str) -> str | None:
    """The role of the key ``secret``, or ``None`` when no such key exists."""
    row = conn.execute(select(ApiKey.role).where(ApiKey.key_hash == hash_key(secret))).first()
    return None if row is None else str(row[0])
