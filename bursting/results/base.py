"""The object-store seam: one container (an S3 bucket) in one store, as publishing uses it.

Implementations: `swift.SwiftStore` (openstacksdk) and `s3.S3Store` (boto3, for Swift's s3api
or any S3 site). The publish logic (`publish.publish`) is written once against this Protocol:
what to upload, conflicts, verification and the URLs do not depend on the store's API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bursting.results.digests import FileDigests
from bursting.results.rules import RemoteObject


class ObjectStore(Protocol):
    """Every method raises the project's errors (translated and redacted at this edge), never
    an SDK's, so a caller can tell a retry from a fix without knowing the store."""

    container: str
    # Names the store in logs and errors (a clouds.yaml entry, an S3 endpoint); no secret.
    label: str
    # What a large object's pieces are called here, for messages: "segments" or "parts".
    piece_word: str
    # The most pieces one object may have (S3: 10000 parts); None when the store checks it.
    max_pieces: int | None

    def open(self) -> None:
        """Authenticate and make sure the container exists (created when missing)."""

    def piece_size(self, wanted: int) -> int:
        """The segment or part size uploads will use, given the configured one."""

    def url(self, name: str) -> str:
        """The object's URL, for the task log and summary.json (no credential in it)."""

    def observe(self, name: str) -> RemoteObject | None:
        """What is stored under the name (size, ETag, sha256 metadata, how it is cut);
        None when nothing is."""

    def upload(self, path: Path, name: str, local: FileDigests) -> None:
        """Store the file under the name, with its sha256 as metadata; a file larger than
        `local.segment_size` goes up in pieces of that size."""

    def delete(self, name: str, remote: RemoteObject) -> None:
        """Remove the object, and its segments or parts with it."""

    def close(self) -> None:
        """Release the connection."""
