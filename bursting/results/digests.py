"""Checksums of a local file as the object store will see it: its size, md5 (a plain object's
ETag), sha256 (kept as object metadata) and the md5 of each segment (Swift) or part (S3) a large
object is cut into, and the ETags both stores give such an object.

One pass over the file computes all of them, so a 1 GB ROOT file is read once before upload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 20  # read size; independent of the segment size


@dataclass(frozen=True)
class FileDigests:
    """What a file's stored copy must match. `chunk_md5s` are the md5s of consecutive
    `segment_size` pieces (one piece for a file that fits in one segment)."""

    size: int
    md5: str
    sha256: str
    segment_size: int
    chunk_md5s: tuple[str, ...]

    @property
    def segmented(self) -> bool:
        """Uploaded as a static large object (openstacksdk segments only files larger than
        one segment)."""
        return self.size > self.segment_size

    @property
    def chunk_sizes(self) -> tuple[int, ...]:
        return chunk_sizes(self.size, self.segment_size)


def chunk_sizes(size: int, segment_size: int) -> tuple[int, ...]:
    """Sizes of the pieces a file of `size` bytes is cut into; an empty file is one empty piece."""
    if segment_size < 1:
        raise ValueError(f"segment size must be >= 1 byte, got {segment_size}")
    if size == 0:
        return (0,)
    full, rest = divmod(size, segment_size)
    return (segment_size,) * full + ((rest,) if rest else ())


def file_digests(path: Path, segment_size: int) -> FileDigests:
    """Size, md5, sha256 and per-segment md5s of `path`, in one read."""
    sizes = chunk_sizes(path.stat().st_size, segment_size)
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    chunks: list[str] = []
    total = 0
    with path.open("rb") as handle:
        for size in sizes:
            chunk = hashlib.md5(usedforsecurity=False)
            left = size
            while left > 0:
                block = handle.read(min(_BLOCK, left))
                if not block:
                    raise ValueError(f"{path} shrank while it was being read")
                md5.update(block)
                sha256.update(block)
                chunk.update(block)
                left -= len(block)
                total += len(block)
            chunks.append(chunk.hexdigest())
        if handle.read(1):
            raise ValueError(f"{path} grew while it was being read")
    return FileDigests(total, md5.hexdigest(), sha256.hexdigest(), segment_size, tuple(chunks))


def chunk_md5s(path: Path, sizes: Sequence[int]) -> tuple[str, ...]:
    """md5s of consecutive pieces of the given sizes: to check a stored large object that was
    cut with another segment size than this run's."""
    out: list[str] = []
    with path.open("rb") as handle:
        for size in sizes:
            chunk = hashlib.md5(usedforsecurity=False)
            left = size
            while left > 0:
                block = handle.read(min(_BLOCK, left))
                if not block:
                    break
                chunk.update(block)
                left -= len(block)
            out.append(chunk.hexdigest())
    return tuple(out)


def slo_etag(segment_md5s: Sequence[str]) -> str:
    """The ETag Swift gives a static large object: the md5 of its segments' md5s, concatenated
    as hex text."""
    return hashlib.md5("".join(segment_md5s).encode(), usedforsecurity=False).hexdigest()


def multipart_etag(part_md5s: Sequence[str]) -> str:
    """The ETag S3 gives an object uploaded in parts: the md5 of the parts' md5s concatenated as
    raw bytes (not hex text, unlike Swift's SLO ETag), then "-" and the number of parts. Swift's
    s3api computes it the same way."""
    joined = b"".join(bytes.fromhex(md5) for md5 in part_md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_md5s)}"
