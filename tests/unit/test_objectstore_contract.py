"""What every ObjectStore gives the one publish logic, held the same way for SwiftStore (over a
fake of openstacksdk's object_store proxy) and S3Store (over a fake of boto3's S3 client): a
first publish uploads, a second is a no-op that writes nothing, changed content is refused with
nothing written, overwrite replaces only what changed, a large file is stored in pieces and
verified, and importing the settings and the publish logic loads no SDK."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bursting.results.base import ObjectStore
from bursting.results.publish import ObjectConflict, publish
from bursting.results.s3 import Redact, S3Store
from bursting.results.swift import SwiftStore
from tests.unit.test_objectstore import FakeConnection, FakeObjectStore
from tests.unit.test_s3 import FakeS3Client

PIECE = 1000


def swift_store() -> tuple[ObjectStore, Callable[[], list[str]]]:
    fake = FakeObjectStore()
    writes = lambda: [c for c in fake.calls if not c.startswith("create")]  # noqa: E731
    return SwiftStore(FakeConnection(fake), "results", "fake-swift"), writes


def s3_store() -> tuple[ObjectStore, Callable[[], list[str]]]:
    fake = FakeS3Client()
    writes = lambda: [c for c in fake.calls if not c.startswith("create")]  # noqa: E731
    return S3Store(fake, "results", Redact([])), writes


@pytest.fixture(params=[swift_store, s3_store], ids=["swift", "s3"])
def store(request: Any) -> tuple[ObjectStore, Callable[[], list[str]]]:
    factory: Callable[[], tuple[ObjectStore, Callable[[], list[str]]]] = request.param
    return factory()


def test_the_publish_contract(store: tuple[ObjectStore, Any], tmp_path: Path) -> None:
    target, writes = store
    files = [tmp_path / "a.png", tmp_path / "merged.root", tmp_path / "summary.json"]
    files[0].write_bytes(b"png" * 10)
    files[1].write_bytes(os.urandom(2 * PIECE + 1))
    files[2].write_bytes(b"{}\n")

    first = publish(target, "c/r", files, segment_size=PIECE)
    assert [(o.name, o.unchanged, o.segments) for o in first] == [
        ("c/r/a.png", False, 0),
        ("c/r/merged.root", False, 3),
        ("c/r/summary.json", False, 0),
    ]
    assert all(o.url.endswith(f"/results/{o.name}") for o in first)
    done = len(writes())
    assert done >= 3

    assert [o.unchanged for o in publish(target, "c/r", files, segment_size=PIECE)] == [True] * 3
    assert len(writes()) == done  # the no-op wrote nothing

    files[0].write_bytes(b"other png")
    with pytest.raises(ObjectConflict) as caught:
        publish(target, "c/r", files, segment_size=PIECE)
    assert caught.value.names == ["c/r/a.png"] and len(writes()) == done

    replaced = publish(target, "c/r", files, segment_size=PIECE, overwrite=True)
    assert [o.unchanged for o in replaced] == [False, True, True]
    assert [o.unchanged for o in publish(target, "c/r", files, segment_size=PIECE)] == [True] * 3


SDKS = ("openstack", "keystoneauth1", "boto3", "botocore", "s3transfer")
BACKENDS = ("bursting.results.swift", "bursting.results.s3", "bursting.results.objectstore")


def module_level_imports(path: Path) -> list[str]:
    """Modules a file imports when it is imported (not inside functions or TYPE_CHECKING)."""
    names: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


@pytest.mark.parametrize("module", ["settings", "publish", "rules", "digests", "base"])
def test_settings_and_publish_load_no_sdk(module: str) -> None:
    """The DAG file reads the rules when it is parsed, and the publish step settles its target
    before it opens a store: neither may pay for openstacksdk or boto3 (loaded by the store)."""
    path = Path(__file__).resolve().parents[2] / "bursting" / "results" / f"{module}.py"
    for name in module_level_imports(path):
        assert not name.startswith(SDKS) and not name.startswith(BACKENDS), (module, name)
