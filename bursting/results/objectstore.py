"""Publish files to a Swift container given an openstacksdk connection: the shared publish
logic (publish.py) over a SwiftStore. For any store, `settings.open_store` then `publish.publish`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bursting.clouds.openstack_errors import Redactor
from bursting.results.publish import (
    DEFAULT_SEGMENT_SIZE,
    MIB,
    ChecksumMismatch,
    ObjectConflict,
    PublishedObject,
    publish,
)
from bursting.results.swift import Connection, SwiftStore

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "MIB",
    "ChecksumMismatch",
    "Connection",
    "ObjectConflict",
    "PublishedObject",
    "publish_objects",
]


def publish_objects(
    conn: Connection,
    container: str,
    prefix: str,
    files: Sequence[Path],
    *,
    overwrite: bool = False,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    cloud: str = "object store",
    redact: Redactor | None = None,
    overwrite_hint: str = "overwrite=True",
) -> list[PublishedObject]:
    """publish.publish to `container` through `conn` (which the caller closes)."""
    return publish(
        SwiftStore(conn, container, cloud, redact),
        prefix,
        files,
        overwrite=overwrite,
        segment_size=segment_size,
        overwrite_hint=overwrite_hint,
    )
