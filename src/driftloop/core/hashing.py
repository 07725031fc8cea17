"""Content hashes and identifiers."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from driftloop.core import clock

__all__ = ["canonical_json", "new_id", "sha256_bytes", "sha256_json"]


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form definitions are hashed in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value).encode())


def new_id(prefix: str) -> str:
    """A sortable unique id: ``prefix-YYYYmmddHHMMSS-<8 hex>`` (time from the driftloop clock)."""
    return f"{prefix}-{clock.now():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
