"""Publish files to an object-store container, verified; the same for every store (base.py).

Plan first, then act: every file's checksums and every stored object under its name are read
before anything is written, so a conflict anywhere uploads nothing. Re-publishing the same
content is a no-op; different content is refused unless overwrite was asked for. After each
upload the store's view is checked against the local file (rules.verify): a plain object's
ETag is its md5; a large object's segments (Swift) or multipart ETag (S3) follow from the md5s
of its pieces; the sha256 metadata must be the file's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bursting.errors import ConfigError, PermanentError
from bursting.results.base import ObjectStore
from bursting.results.digests import FileDigests, chunk_md5s, file_digests
from bursting.results.rules import (
    Action,
    Decision,
    RemoteObject,
    container_problem,
    decide,
    name_problem,
    object_name,
    verify,
)

log = logging.getLogger(__name__)
MIB = 1 << 20
DEFAULT_SEGMENT_SIZE = 64 * MIB


class ObjectConflict(PermanentError):
    """Objects already stored under the names differ from the files; nothing was uploaded."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class ChecksumMismatch(PermanentError):
    """A stored object is not the local file after its upload."""


@dataclass(frozen=True)
class PublishedObject:
    name: str
    url: str
    size: int
    sha256: str
    unchanged: bool  # already stored with the same content: nothing was written
    segments: int  # segments (Swift) or parts (S3); 0 for a plain object

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
            "unchanged": self.unchanged,
            "segments": self.segments,
        }


@dataclass(frozen=True)
class Planned:
    path: Path
    name: str
    local: FileDigests
    remote: RemoteObject | None
    decision: Decision


def publish(
    store: ObjectStore,
    prefix: str,
    files: Sequence[Path],
    *,
    overwrite: bool = False,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    overwrite_hint: str = "overwrite=True",
) -> list[PublishedObject]:
    """Put each file at `<prefix>/<file name>` in the store's container (created if missing)
    and return what is stored, in the files' order. Raises ConfigError for bad names or files,
    ObjectConflict when a stored object differs and `overwrite` is false (nothing uploaded then),
    ChecksumMismatch when an upload did not store the file, and the store's translated errors."""
    names = check_inputs(store.container, prefix, files, segment_size)
    store.open()
    size = store.piece_size(segment_size)
    plan = [
        plan_one(store, path, name, file_digests(path, size), overwrite) for path, name in names
    ]
    too_many = [
        f"{p.path}: {len(p.local.chunk_md5s)} {store.piece_word} of {size} bytes, more than the "
        f"{store.max_pieces} one object may have; raise the segment (part) size"
        for p in plan
        if store.max_pieces is not None and len(p.local.chunk_md5s) > store.max_pieces
    ]
    if too_many:
        raise ConfigError(f"publish to {store.label}", too_many)
    conflicts = [p for p in plan if p.decision.action is Action.CONFLICT]
    if conflicts:
        lines = [f"{p.name}: {p.decision.reason}" for p in conflicts]
        raise ObjectConflict(
            f"container {store.container!r}: {len(conflicts)} object(s) already stored with other "
            "content; nothing was uploaded:\n  " + "\n  ".join(lines) + f"\nTo replace them, "
            f"publish again with {overwrite_hint}; or publish to another container or prefix.",
            [p.name for p in conflicts],
        )
    return [carry_out(store, p, overwrite_hint) for p in plan]


def check_inputs(
    container: str, prefix: str, files: Sequence[Path], segment_size: int
) -> list[tuple[Path, str]]:
    """(file, object name) pairs; a ConfigError lists every bad name or file at once."""
    problems = [p for p in [container_problem(container)] if p]
    if segment_size < 1:
        problems.append(f"segment size must be >= 1 byte, got {segment_size}")
    names: list[tuple[Path, str]] = []
    for path in files:
        name = object_name(prefix, path.name)
        if not path.is_file():
            problems.append(f"{path}: not a file")
        elif (problem := name_problem(name)) is not None:
            problems.append(problem)
        elif name in {n for _, n in names}:
            problems.append(f"{path}: a second file named {path.name!r}")
        else:
            names.append((path, name))
    if problems:
        raise ConfigError(f"publish to container {container!r}", problems)
    return names


def differences(path: Path, local: FileDigests, remote: RemoteObject) -> list[str]:
    """How the stored object differs from the file; a large object stored with another cut
    than this run's is compared with the file read in its pieces."""
    sizes = remote.piece_sizes
    chunks = None
    if sizes is not None:
        chunks = local.chunk_md5s if sizes == local.chunk_sizes else chunk_md5s(path, sizes)
    return verify(local, remote, chunks)


def plan_one(
    store: ObjectStore, path: Path, name: str, local: FileDigests, overwrite: bool
) -> Planned:
    remote = store.observe(name)
    problems = differences(path, local, remote) if remote is not None else []
    return Planned(path, name, local, remote, decide(local, remote, problems, overwrite))


def carry_out(store: ObjectStore, planned: Planned, overwrite_hint: str) -> PublishedObject:
    """Upload (after removing what a replace replaces), then check the store's view."""
    name, local = planned.name, planned.local
    if planned.decision.action is Action.UNCHANGED:
        log.info("%s: unchanged %s", store.label, store.url(name))
        return published(store, planned, unchanged=True)
    started = time.monotonic()
    if planned.decision.action is Action.REPLACE:
        assert planned.remote is not None
        log.warning("%s: replacing %s: %s", store.label, name, planned.decision.reason)
        store.delete(name, planned.remote)
    store.upload(planned.path, name, local)
    uploaded = time.monotonic()
    remote = store.observe(name)
    problems = (
        ["nothing stored under the name (the store refused the upload)"]
        if remote is None
        else differences(planned.path, local, remote)
    )
    if problems:
        raise ChecksumMismatch(
            f"{store.label}: container {store.container!r}: object {name!r} does not match "
            f"{planned.path} after upload: " + "; ".join(problems) + "; publish again with "
            f"{overwrite_hint} to replace it"
        )
    log.info(
        "%s: published %s (%d bytes, %s) in %.2f s, verified in %.2f s",
        store.label,
        store.url(name),
        local.size,
        f"{len(local.chunk_md5s)} {store.piece_word}" if local.segmented else "one object",
        uploaded - started,
        time.monotonic() - uploaded,
    )
    return published(store, planned, unchanged=False)


def published(store: ObjectStore, planned: Planned, unchanged: bool) -> PublishedObject:
    local, remote = planned.local, planned.remote
    if unchanged and remote is not None:
        pieces = len(remote.piece_sizes or ())  # as stored, perhaps cut by another run
    else:
        pieces = len(local.chunk_md5s) if local.segmented else 0
    return PublishedObject(
        planned.name, store.url(planned.name), local.size, local.sha256, unchanged, pieces
    )
