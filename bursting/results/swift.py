"""The object store as Swift, through openstacksdk's object_store proxy.

Files larger than one segment become static large objects (SLO) whose segments sit beside them
as `<name>/000000`...; the manifest lists each segment's size and md5, which is what a stored
large object is verified against. SDK errors are translated here, redacted, without their chains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from openstack import exceptions as sdk

from bursting.clouds.openstack_errors import Redactor, translate
from bursting.errors import BurstingError, PermanentError
from bursting.results.digests import FileDigests
from bursting.results.rules import SHA256_KEY, RemoteObject, Segment

log = logging.getLogger(__name__)
T = TypeVar("T")


class Connection(Protocol):
    """The part of openstack.connection.Connection used here."""

    object_store: Any

    def close(self) -> None: ...


class SwiftStore:
    """One Swift container of one cloud (a clouds.yaml entry); implements base.ObjectStore."""

    piece_word = "segments"
    max_pieces: int | None = None  # Swift refuses a manifest that is too long itself

    def __init__(
        self, conn: Connection, container: str, cloud: str, redact: Redactor | None = None
    ) -> None:
        self.conn = conn
        self.container = container
        self.label = cloud
        self.redact = redact or Redactor(())
        self._api: Any = None
        self._endpoint = ""

    @property
    def api(self) -> Any:
        if self._api is None:
            raise RuntimeError("SwiftStore.open() must come first")
        return self._api

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except BurstingError:
            raise
        except Exception as exc:  # the SDK's and keystoneauth's: translated, chain dropped
            raise translate(exc, self.label, operation, self.redact) from None

    def open(self) -> None:
        try:
            self._api = self.conn.object_store  # authenticates, finds the endpoint in the catalog
        except Exception as exc:
            raise translate(exc, self.label, "connect to the object store", self.redact) from None
        self._ensure_container()
        self._endpoint = str(self.call("find the object-store endpoint", self.api.get_endpoint))

    def close(self) -> None:
        self.conn.close()

    def piece_size(self, wanted: int) -> int:
        # openstacksdk reads the cluster's limits (/info): no segment above the largest object.
        return int(self.call("read the segment limits", self.api.get_object_segment_size, wanted))

    def url(self, name: str) -> str:
        return f"{self._endpoint.rstrip('/')}/{quote(self.container)}/{quote(name)}"

    def _ensure_container(self) -> None:
        try:
            self.api.get_container_metadata(self.container)
        except sdk.NotFoundException:
            self.call(
                f"create container {self.container}", self.api.create_container, name=self.container
            )
            log.info("%s: created container %s", self.label, self.container)
        except Exception as exc:
            raise translate(
                exc, self.label, f"read container {self.container}", self.redact
            ) from None

    def observe(self, name: str) -> RemoteObject | None:
        """HEAD the object and, for a large object, read its manifest; None if absent."""
        try:
            head = self.api.get_object_metadata(name, container=self.container)
        except sdk.NotFoundException:
            return None
        except Exception as exc:
            raise translate(exc, self.label, f"read object {name}", self.redact) from None
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

    def upload(self, path: Path, name: str, local: FileDigests) -> None:
        self.call(f"upload {name}", self._upload, path, name, local)

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

    def delete(self, name: str, remote: RemoteObject) -> None:
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
                f"{self.label}: delete {name} and its segments: {response.status_code} "
                f"{self.redact(str(body.get('Errors') or response.text)[:300])}"
            )
