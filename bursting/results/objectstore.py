"""Publish files to an object-store container (Swift through openstacksdk), verified.

Plan first, then act: every file's checksums and every stored object under its name are read
before anything is written, so a conflict anywhere uploads nothing. Files larger than one
segment become static large objects (SLO) whose segments sit beside them as `<name>/000000`...
Each object carries its sha256 as metadata, and after upload the store's view is checked
against the local file: a plain object's ETag is its md5; a large object's manifest lists each
segment's size and md5. SDK errors are translated here, redacted, without their chains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from openstack import exceptions as sdk

from bursting.clouds.openstack_errors import Redactor, translate
from bursting.errors import BurstingError, ConfigError, PermanentError
from bursting.results.digests import FileDigests, chunk_md5s, file_digests
from bursting.results.rules import (
    SHA256_KEY,
    Action,
    Decision,
    RemoteObject,
    Segment,
    container_problem,
    decide,
    name_problem,
    object_name,
    verify,
)

log = logging.getLogger(__name__)
MIB = 1 << 20
DEFAULT_SEGMENT_SIZE = 64 * MIB
T = TypeVar("T")


class Connection(Protocol):
    """The part of openstack.connection.Connection used here."""

    object_store: Any

    def close(self) -> None: ...


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
    segments: int  # 0 for a plain object

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
class _Planned:
    path: Path
    name: str
    local: FileDigests
    remote: RemoteObject | None
    decision: Decision


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
    """Put each file at `<prefix>/<file name>` in `container` (created if missing) and return
    what is stored, in the files' order. Raises ConfigError for bad names or files,
    ObjectConflict when a stored object differs and `overwrite` is false (nothing uploaded then),
    ChecksumMismatch when an upload did not store the file, and the project's cloud errors."""
    names = _check_inputs(container, prefix, files, segment_size)
    redactor = redact or Redactor(())
    try:
        api = conn.object_store  # authenticates and finds the endpoint in the catalog
    except Exception as exc:
        raise translate(exc, cloud, "connect to the object store", redactor) from None
    store = _Store(api, container, cloud, redactor, overwrite_hint)
    size = int(
        store.call("read the segment limits", store.api.get_object_segment_size, segment_size)
    )
    plan = [store.plan(path, name, file_digests(path, size), overwrite) for path, name in names]
    conflicts = [p for p in plan if p.decision.action is Action.CONFLICT]
    if conflicts:
        lines = [f"{p.name}: {p.decision.reason}" for p in conflicts]
        raise ObjectConflict(
            f"container {container!r}: {len(conflicts)} object(s) already stored with other "
            "content; nothing was uploaded:\n  " + "\n  ".join(lines) + f"\nTo replace them, "
            f"publish again with {overwrite_hint}; or publish to another container or prefix.",
            [p.name for p in conflicts],
        )
    return [store.carry_out(p) for p in plan]


def _check_inputs(
    container: str, prefix: str, files: Sequence[Path], segment_size: int
) -> list[tuple[Path, str]]:
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


class _Store:
    """One container through openstacksdk's object_store proxy; every call translated."""

    def __init__(
        self, api: Any, container: str, cloud: str, redact: Redactor, overwrite_hint: str
    ) -> None:
        self.api = api
        self.container = container
        self.overwrite_hint = overwrite_hint
        self.cloud = cloud
        self.redact = redact
        self._ensure_container()
        self.endpoint = str(self.call("find the object-store endpoint", api.get_endpoint))

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except BurstingError:
            raise
        except Exception as exc:  # the SDK's and keystoneauth's: translated, chain dropped
            raise translate(exc, self.cloud, operation, self.redact) from None

    def url(self, name: str) -> str:
        return f"{self.endpoint.rstrip('/')}/{quote(self.container)}/{quote(name)}"

    def _ensure_container(self) -> None:
        try:
            self.api.get_container_metadata(self.container)
        except sdk.NotFoundException:
            self.call(
                f"create container {self.container}", self.api.create_container, name=self.container
            )
            log.info("%s: created container %s", self.cloud, self.container)
        except Exception as exc:
            raise translate(
                exc, self.cloud, f"read container {self.container}", self.redact
            ) from None

    def observe(self, name: str) -> RemoteObject | None:
        """HEAD the object and, for a large object, read its manifest; None if absent."""
        try:
            head = self.api.get_object_metadata(name, container=self.container)
        except sdk.NotFoundException:
            return None
        except Exception as exc:
            raise translate(exc, self.cloud, f"read object {name}", self.redact) from None
        metadata = {str(k).lower(): str(v) for k, v in (head.metadata or {}).items()}
        segments = None
        if head.is_static_large_object:
            segments = self.call(f"read the manifest of {name}", self._manifest, name)
        return RemoteObject(
            size=int(head.content_length or 0),
            etag=str(head.etag or "").strip('"'),
            sha256=metadata.get(SHA256_KEY),
            segments=segments,
        )

    def _manifest(self, name: str) -> tuple[Segment, ...]:
        response = self.api.get(
            self._path(name), params={"multipart-manifest": "get", "format": "raw"}
        )
        sdk.raise_from_response(response)
        return tuple(
            Segment(int(entry["size_bytes"]), str(entry["etag"]).strip('"'))
            for entry in response.json()
        )

    def _path(self, name: str) -> str:
        return f"/{quote(self.container)}/{quote(name)}"

    def problems(self, path: Path, local: FileDigests, remote: RemoteObject) -> list[str]:
        chunks = None
        if remote.segments is not None:
            sizes = tuple(s.size for s in remote.segments)
            # Stored with another segment size than this run's: read the file in its pieces.
            chunks = local.chunk_md5s if sizes == local.chunk_sizes else chunk_md5s(path, sizes)
        return verify(local, remote, chunks)

    def plan(self, path: Path, name: str, local: FileDigests, overwrite: bool) -> _Planned:
        remote = self.observe(name)
        problems = self.problems(path, local, remote) if remote is not None else []
        return _Planned(path, name, local, remote, decide(local, remote, problems, overwrite))

    def carry_out(self, planned: _Planned) -> PublishedObject:
        name, local = planned.name, planned.local
        if planned.decision.action is Action.UNCHANGED:
            log.info("%s: unchanged %s", self.cloud, self.url(name))
            return self._published(planned, unchanged=True)
        started = time.monotonic()
        if planned.decision.action is Action.REPLACE:
            assert planned.remote is not None
            log.warning("%s: replacing %s: %s", self.cloud, name, planned.decision.reason)
            self._delete(name, planned.remote)
        self.call(f"upload {name}", self._upload, planned.path, name, local)
        uploaded = time.monotonic()
        remote = self.observe(name)
        problems = (
            ["nothing stored under the name (the store refused the upload)"]
            if remote is None
            else self.problems(planned.path, local, remote)
        )
        if problems:
            raise ChecksumMismatch(
                f"{self.cloud}: container {self.container!r}: object {name!r} does not match "
                f"{planned.path} after upload: " + "; ".join(problems) + "; publish again with "
                f"{self.overwrite_hint} to replace it"
            )
        log.info(
            "%s: published %s (%d bytes, %s) in %.2f s, verified in %.2f s",
            self.cloud,
            self.url(name),
            local.size,
            f"{len(local.chunk_md5s)} segments" if local.segmented else "one object",
            uploaded - started,
            time.monotonic() - uploaded,
        )
        return self._published(planned, unchanged=False)

    def _upload(self, path: Path, name: str, local: FileDigests) -> None:
        # filename= (never data=): openstacksdk 4.22 leaks data= uploads' metadata into later
        # objects. A plain object's ETag header makes Swift refuse a body that arrived damaged.
        headers = {} if local.segmented else {"ETag": local.md5}
        self.api.upload_object(
            self.container,
            name,
            filename=str(path),
            segment_size=local.segment_size,
            metadata={SHA256_KEY: local.sha256},
            md5=local.md5,
            sha256=local.sha256,
            **headers,
        )

    def _delete(self, name: str, remote: RemoteObject) -> None:
        if remote.segments is None:
            self.call(
                f"delete {name}",
                self.api.delete_object,
                name,
                container=self.container,
                ignore_missing=True,
            )
            return
        # A large object goes with its segments.
        response = self.call(
            f"delete {name}",
            self.api.delete,
            self._path(name),
            params={"multipart-manifest": "delete"},
            headers={"Accept": "application/json"},
        )
        try:
            body = response.json() if response.content else {}
        except ValueError:  # not the JSON asked for: judge by the status alone
            body = {}
        if response.status_code >= 400 or body.get("Errors"):
            raise PermanentError(
                f"{self.cloud}: delete {name} and its segments: {response.status_code} "
                f"{self.redact(str(body.get('Errors') or response.text)[:300])}"
            )

    def _published(self, planned: _Planned, unchanged: bool) -> PublishedObject:
        local, remote = planned.local, planned.remote
        if unchanged and remote is not None:
            segments = len(remote.segments or ())  # as stored, perhaps cut by another run
        else:
            segments = len(local.chunk_md5s) if local.segmented else 0
        return PublishedObject(
            planned.name, self.url(planned.name), local.size, local.sha256, unchanged, segments
        )
