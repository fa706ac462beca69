"""The pure rules of publishing: which names are allowed, whether a stored object is the local
file, and what to do with an object that is already there.

Re-publishing a run never replaces anything silently: the same content is left alone
(reported unchanged), different content is a conflict unless overwrite was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bursting.results.digests import FileDigests, multipart_etag, slo_etag

# A name that is both a Swift container and an S3 bucket (Swift's s3api checks bucket names the
# way S3 does), so a site can later read the same results over S3.
CONTAINER_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
CONTAINER_FIX = (
    "use 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit "
    "(a name Swift and S3 both accept)"
)
# Swift's limit on an object name; a large object's segments add "/NNNNNN" to it.
MAX_OBJECT_NAME = 1024
SEGMENT_SUFFIX = len("/000000")
SHA256_KEY = "sha256"  # object metadata (X-Object-Meta-Sha256)

_CONTAINER = re.compile(CONTAINER_PATTERN)
_PART = re.compile(r"^[A-Za-z0-9_.+=@,-]+$")


def container_problem(name: str) -> str | None:
    """What is wrong with a container name, or None."""
    if not _CONTAINER.match(name) or ".." in name:
        return f"{name!r} is not a valid container name; {CONTAINER_FIX}"
    return None


def name_problem(name: str) -> str | None:
    """What is wrong with an object name (`prefix/file`), or None. Parts are plain words:
    no empty part, no '.' or '..', nothing a shell or URL would need quoting for."""
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _PART.match(part):
            return (
                f"object name {name!r}: part {part!r} must be letters, digits or '_.+=@,-' "
                "(not empty, '.' or '..')"
            )
    if len(name.encode()) + SEGMENT_SUFFIX > MAX_OBJECT_NAME:
        return f"object name {name!r} is longer than {MAX_OBJECT_NAME - SEGMENT_SUFFIX} bytes"
    return None


def object_name(prefix: str, filename: str) -> str:
    """Where a file goes: its own name under the prefix (files are published flat)."""
    return f"{prefix.strip('/')}/{filename}" if prefix.strip("/") else filename


@dataclass(frozen=True)
class Segment:
    size: int
    md5: str


@dataclass(frozen=True)
class RemoteObject:
    """A stored object as HEAD (and, for a large object, its manifest) describe it. A Swift
    large object lists its segments; an S3 multipart object only tells its parts' sizes."""

    size: int
    etag: str  # unquoted; a Swift large object's is the md5 of its segments' md5s
    sha256: str | None  # our metadata; None if someone else stored it
    segments: tuple[Segment, ...] | None = None  # Swift SLO manifest; None for a plain object
    part_sizes: tuple[int, ...] | None = None  # S3 multipart object; None for a plain object

    @property
    def piece_sizes(self) -> tuple[int, ...] | None:
        """How the stored object is cut (segments or parts); None for a plain object."""
        if self.segments is not None:
            return tuple(s.size for s in self.segments)
        return self.part_sizes


def verify(
    local: FileDigests, remote: RemoteObject, local_chunks: Sequence[str] | None = None
) -> list[str]:
    """Every way the stored object differs from the local file; empty when it is the file.
    A plain object: size and ETag (= md5). A Swift large object: each segment's size and md5
    against the file's piece at that place, and the manifest's own ETag. An S3 multipart object:
    its ETag against the one computed from the file's pieces. `local_chunks` are the pieces' md5s
    for the stored cut when it differs from this run's. All: the sha256 metadata."""
    problems: list[str] = []
    if remote.size != local.size:
        problems.append(f"size {remote.size}, local {local.size}")
    if remote.sha256 is None:
        problems.append(f"no {SHA256_KEY} metadata")
    elif remote.sha256 != local.sha256:
        problems.append(f"sha256 metadata {remote.sha256[:12]}…, local {local.sha256[:12]}…")
    chunks = tuple(local_chunks) if local_chunks is not None else local.chunk_md5s
    if remote.part_sizes is not None:
        expected = multipart_etag(chunks)
        if remote.etag != expected:
            problems.append(f"multipart ETag {remote.etag}, local {expected}")
        return problems
    if remote.segments is None:
        if remote.etag != local.md5:
            problems.append(f"ETag {remote.etag}, local md5 {local.md5}")
        return problems
    stored = remote.segments
    if sum(s.size for s in stored) != local.size:
        problems.append(f"segments hold {sum(s.size for s in stored)} bytes, local {local.size}")
    if len(stored) != len(chunks):
        problems.append(f"{len(stored)} segments, expected {len(chunks)}")
    for index, (segment, md5) in enumerate(zip(stored, chunks, strict=False)):
        if segment.md5 != md5:
            problems.append(f"segment {index:06d}: md5 {segment.md5}, local {md5}")
    if remote.etag != slo_etag([s.md5 for s in stored]):
        problems.append(f"manifest ETag {remote.etag} does not match its segments")
    return problems


class Action(Enum):
    UPLOAD = "upload"  # nothing there yet
    UNCHANGED = "unchanged"  # the same content is there: leave it
    REPLACE = "replace"  # different content, and overwrite was asked for
    CONFLICT = "conflict"  # different content: refuse


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(
    local: FileDigests, remote: RemoteObject | None, problems: Sequence[str], overwrite: bool
) -> Decision:
    """What to do with one file, given what is stored under its name and how that differs."""
    if remote is None:
        return Decision(Action.UPLOAD, "new")
    if not problems:
        return Decision(Action.UNCHANGED, "same sha256 and checksums")
    if remote.sha256 is None:
        why = "it has no sha256 metadata (it was not published by bursting)"
    elif remote.sha256 != local.sha256:
        why = (
            f"its content differs (stored sha256 {remote.sha256[:12]}…, local {local.sha256[:12]}…)"
        )
    else:
        why = "its stored bytes do not match its sha256 (" + "; ".join(problems) + ")"
    return Decision(Action.REPLACE if overwrite else Action.CONFLICT, why)
