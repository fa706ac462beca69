"""Publishing results to object storage, without a store: checksums and segment md5s, the
verification of a stored object, name rules, the unchanged / replace / conflict decision, the
connection's settings, and publish_objects' order of work against a fake of openstacksdk's
object_store proxy (the third-party edge)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from openstack import exceptions as sdk

from bursting.airflow.campaign import CampaignError, results_target
from bursting.clouds.openstack_errors import Redactor
from bursting.errors import CloudUnavailable, ConfigError
from bursting.results.digests import chunk_md5s, chunk_sizes, file_digests, slo_etag
from bursting.results.objectstore import ChecksumMismatch, ObjectConflict, publish_objects
from bursting.results.rules import (
    Action,
    RemoteObject,
    Segment,
    container_problem,
    decide,
    name_problem,
    object_name,
    verify,
)
from bursting.results.settings import connect, store_settings

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ----- digests -----
@pytest.mark.parametrize(
    ("size", "segment", "expected"),
    [
        (0, 10, (0,)),
        (5, 10, (5,)),
        (10, 10, (10,)),
        (11, 10, (10, 1)),
        (30, 10, (10, 10, 10)),
    ],
)
def test_chunk_sizes(size: int, segment: int, expected: tuple[int, ...]) -> None:
    assert chunk_sizes(size, segment) == expected


def test_chunk_sizes_refuses_an_empty_segment() -> None:
    with pytest.raises(ValueError, match="segment size"):
        chunk_sizes(5, 0)


def test_file_digests_in_one_read_match_hashlib(tmp_path: Path) -> None:
    # a segment size that is not a multiple of the read block, and a short last piece
    data = os.urandom(3 * MIB + 12345)
    segment = 1_500_000
    digests = file_digests(write(tmp_path / "f", data), segment)
    assert digests.size == len(data)
    assert digests.md5 == md5(data)
    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    pieces = [data[i : i + segment] for i in range(0, len(data), segment)]
    assert digests.chunk_md5s == tuple(md5(p) for p in pieces)
    assert digests.chunk_sizes == tuple(len(p) for p in pieces)
    assert digests.segmented


def test_a_file_of_exactly_one_segment_is_a_plain_object(tmp_path: Path) -> None:
    digests = file_digests(write(tmp_path / "f", b"x" * 1000), 1000)
    assert not digests.segmented
    assert digests.chunk_md5s == (digests.md5,)
    empty = file_digests(write(tmp_path / "e", b""), 1000)
    assert (empty.size, empty.md5, empty.segmented) == (0, md5(b""), False)


def test_chunk_md5s_for_another_cut(tmp_path: Path) -> None:
    data = os.urandom(2500)
    path = write(tmp_path / "f", data)
    assert chunk_md5s(path, (1000, 1000, 500)) == (
        md5(data[:1000]),
        md5(data[1000:2000]),
        md5(data[2000:]),
    )


def test_slo_etag_is_the_md5_of_the_segment_md5s() -> None:
    parts = [md5(b"a"), md5(b"b")]
    assert slo_etag(parts) == md5((parts[0] + parts[1]).encode())


# ----- verification -----
def plain(data: bytes, sha: str | None = "same") -> RemoteObject:
    return RemoteObject(
        len(data), md5(data), hashlib.sha256(data).hexdigest() if sha == "same" else sha
    )


def slo(data: bytes, segment: int) -> RemoteObject:
    pieces = [data[i : i + segment] for i in range(0, len(data), segment)]
    segments = tuple(Segment(len(p), md5(p)) for p in pieces)
    return RemoteObject(
        len(data), slo_etag([s.md5 for s in segments]), hashlib.sha256(data).hexdigest(), segments
    )


def test_verify_a_plain_object(tmp_path: Path) -> None:
    data = b"plots" * 100
    local = file_digests(write(tmp_path / "f", data), MIB)
    assert verify(local, plain(data)) == []
    damaged = RemoteObject(len(data), md5(b"other"), local.sha256)
    assert verify(local, damaged) == [f"ETag {md5(b'other')}, local md5 {local.md5}"]
    assert "no sha256 metadata" in verify(local, plain(data, sha=None))
    short = RemoteObject(len(data) - 1, local.md5, local.sha256)
    assert verify(local, short) == [f"size {len(data) - 1}, local {len(data)}"]


def test_verify_a_large_object_segment_by_segment(tmp_path: Path) -> None:
    data = os.urandom(2500)
    local = file_digests(write(tmp_path / "f", data), 1000)
    remote = slo(data, 1000)
    assert verify(local, remote) == []
    # one segment's bytes differ (the manifest's ETag follows its segments, as Swift makes it)
    bad = list(remote.segments or ())
    bad[1] = Segment(1000, md5(b"not it"))
    wrong = RemoteObject(remote.size, slo_etag([s.md5 for s in bad]), remote.sha256, tuple(bad))
    assert verify(local, wrong) == [
        f"segment 000001: md5 {md5(b'not it')}, local {md5(data[1000:2000])}"
    ]
    # a manifest whose ETag is not its segments'
    assert verify(local, RemoteObject(remote.size, "0" * 32, remote.sha256, remote.segments)) == [
        f"manifest ETag {'0' * 32} does not match its segments"
    ]
    missing = RemoteObject(2000, remote.etag, remote.sha256, (remote.segments or ())[:2])
    problems = verify(local, missing)
    assert (
        "2 segments, expected 3" in problems and "segments hold 2000 bytes, local 2500" in problems
    )


def test_verify_a_large_object_cut_by_another_segment_size(tmp_path: Path) -> None:
    data = os.urandom(2500)
    path = write(tmp_path / "f", data)
    local = file_digests(path, 1000)
    remote = slo(data, 700)
    assert verify(local, remote) != []  # against this run's pieces it cannot match...
    sizes = tuple(s.size for s in remote.segments or ())
    assert verify(local, remote, chunk_md5s(path, sizes)) == []  # ...against its own, it does


# ----- the decision -----
def test_decide(tmp_path: Path) -> None:
    data = b"summary"
    local = file_digests(write(tmp_path / "f", data), MIB)
    assert decide(local, None, [], overwrite=False).action is Action.UPLOAD
    same = plain(data)
    assert decide(local, same, verify(local, same), overwrite=False).action is Action.UNCHANGED
    assert decide(local, same, verify(local, same), overwrite=True).action is Action.UNCHANGED
    other = plain(b"other summary")
    refused = decide(local, other, verify(local, other), overwrite=False)
    assert refused.action is Action.CONFLICT
    assert (
        "content differs" in refused.reason and other.sha256 and other.sha256[:12] in refused.reason
    )
    assert decide(local, other, verify(local, other), overwrite=True).action is Action.REPLACE
    foreign = plain(data, sha=None)
    assert (
        "not published by bursting" in decide(local, foreign, verify(local, foreign), False).reason
    )
    # the right sha256 on the wrong bytes: not unchanged
    corrupt = RemoteObject(len(data), md5(b"bad"), local.sha256)
    decision = decide(local, corrupt, verify(local, corrupt), overwrite=False)
    assert decision.action is Action.CONFLICT and "do not match its sha256" in decision.reason


# ----- names -----
@pytest.mark.parametrize("name", ["results", "mc-2026.v1", "a1b", "0" * 63])
def test_valid_container_names(name: str) -> None:
    assert container_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "ab", "Results", "my_results", "-abc", "abc-", "a..b", "a/b", "0" * 64]
)
def test_invalid_container_names_say_what_is_allowed(name: str) -> None:
    problem = container_problem(name)
    assert problem is not None and "3-63 lowercase letters" in problem


def test_object_names() -> None:
    assert object_name("camp/run_1", "merged.root") == "camp/run_1/merged.root"
    assert object_name("/camp/", "a.png") == "camp/a.png"
    assert object_name("", "a.png") == "a.png"
    assert name_problem("camp/manual__2026-11-23T20_19_14.1_00_00/merged.root") is None
    for bad in ("camp//x", "camp/../x", "camp/./x", "camp/x y", "/camp"):
        assert name_problem(bad) is not None, bad
    assert "longer than 1017 bytes" in (name_problem("a" * 1018) or "")


# ----- publish_objects against a fake object_store proxy -----
class FakeObjectStore:
    """openstacksdk's object_store proxy, as far as publish_objects uses it: plain objects and
    static large objects held in memory; `refuse` makes uploads vanish (openstacksdk's plain
    upload does not raise on a refusal)."""

    def __init__(self) -> None:
        self.containers: set[str] = set()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.refuse = False
        self.fail_with: Exception | None = None

    def get_object_segment_size(self, size: int) -> int:
        return size

    def get_endpoint(self) -> str:
        return "http://127.0.0.1:8080/v1/AUTH_p"

    def get_container_metadata(self, name: str) -> object:
        if self.fail_with is not None:
            raise self.fail_with
        if name not in self.containers:
            raise sdk.NotFoundException("no container")
        return object()

    def create_container(self, name: str) -> None:
        self.calls.append(f"create {name}")
        self.containers.add(name)

    def get_object_metadata(self, name: str, container: str) -> Any:
        found = self.objects.get((container, name))
        if found is None:
            raise sdk.NotFoundException("no object")
        return type("Head", (), found["head"])

    def get(self, path: str, params: dict[str, str]) -> Any:
        _, container, name = path.split("/", 2)
        manifest = self.objects[(container, name)]["manifest"]
        return FakeResponse(200, manifest)

    def upload_object(
        self, container: str, name: str, *, filename: str, segment_size: int, **kwargs: Any
    ) -> None:
        self.calls.append(f"upload {name}")
        if self.refuse:
            return
        data = Path(filename).read_bytes()
        head: dict[str, Any] = {
            "content_length": len(data),
            "metadata": dict(kwargs["metadata"]),
            "is_static_large_object": None,
            "etag": f'"{md5(data)}"' if len(data) <= segment_size else "",
        }
        manifest = None
        if len(data) > segment_size:
            pieces = [data[i : i + segment_size] for i in range(0, len(data), segment_size)]
            manifest = [{"size_bytes": len(p), "etag": md5(p)} for p in pieces]
            head["is_static_large_object"] = True
            head["etag"] = f'"{slo_etag([md5(p) for p in pieces])}"'
        self.objects[(container, name)] = {"head": head, "manifest": manifest}

    def delete_object(self, name: str, container: str, ignore_missing: bool) -> None:
        self.calls.append(f"delete {name}")
        self.objects.pop((container, name), None)

    def delete(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Any:
        _, container, name = path.split("/", 2)
        self.calls.append(f"delete-slo {name}")
        self.objects.pop((container, name), None)
        return FakeResponse(200, {"Errors": []})


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.body = body
        self.content = json.dumps(body).encode()
        self.text = json.dumps(body)
        self.headers: dict[str, str] = {}

    def json(self) -> Any:
        return self.body


class FakeConnection:
    def __init__(self, store: FakeObjectStore) -> None:
        self.object_store = store

    def close(self) -> None:
        pass


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return [
        write(tmp_path / "jet_pt.png", b"png" * 100),
        write(tmp_path / "merged.root", os.urandom(2500)),
        write(tmp_path / "summary.json", b'{"jobs": 8}\n'),
    ]


def test_publish_then_again_is_unchanged(files: list[Path]) -> None:
    store = FakeObjectStore()
    first = publish_objects(FakeConnection(store), "results", "camp/run", files, segment_size=1000)
    assert [o.name for o in first] == [
        "camp/run/jet_pt.png",
        "camp/run/merged.root",
        "camp/run/summary.json",
    ]
    assert [o.segments for o in first] == [0, 3, 0]
    assert first[1].url == "http://127.0.0.1:8080/v1/AUTH_p/results/camp/run/merged.root"
    assert first[1].sha256 == hashlib.sha256(files[1].read_bytes()).hexdigest()
    assert store.calls[0] == "create results"
    store.calls.clear()
    again = publish_objects(FakeConnection(store), "results", "camp/run", files, segment_size=1000)
    assert all(o.unchanged for o in again) and store.calls == []


def test_a_conflict_anywhere_uploads_nothing(files: list[Path]) -> None:
    store = FakeObjectStore()
    publish_objects(FakeConnection(store), "results", "camp/run", files, segment_size=1000)
    files[2].write_bytes(b'{"jobs": 9}\n')
    files.append(write(files[0].parent / "new.png", b"new"))
    store.calls.clear()
    with pytest.raises(ObjectConflict) as caught:
        publish_objects(
            FakeConnection(store),
            "results",
            "camp/run",
            files,
            segment_size=1000,
            overwrite_hint="results_overwrite=true",
        )
    assert caught.value.names == ["camp/run/summary.json"]
    assert "camp/run/summary.json: its content differs" in str(caught.value)
    assert "results_overwrite=true" in str(caught.value)
    assert store.calls == []  # not even the new file
    replaced = publish_objects(
        FakeConnection(store), "results", "camp/run", files, segment_size=1000, overwrite=True
    )
    assert [o.unchanged for o in replaced] == [True, True, False, False]
    assert store.calls == [
        "delete camp/run/summary.json",
        "upload camp/run/summary.json",
        "upload camp/run/new.png",
    ]


def test_replacing_a_large_object_deletes_its_segments_first(files: list[Path]) -> None:
    store = FakeObjectStore()
    publish_objects(FakeConnection(store), "results", "camp/run", files, segment_size=1000)
    files[1].write_bytes(os.urandom(1500))
    store.calls.clear()
    publish_objects(
        FakeConnection(store), "results", "camp/run", files, segment_size=1000, overwrite=True
    )
    assert store.calls == ["delete-slo camp/run/merged.root", "upload camp/run/merged.root"]


def test_an_upload_the_store_did_not_keep_is_an_error(files: list[Path]) -> None:
    store = FakeObjectStore()
    store.refuse = True
    with pytest.raises(
        ChecksumMismatch, match=r"camp/run/jet_pt.png.*nothing stored under the name"
    ):
        publish_objects(FakeConnection(store), "results", "camp/run", files, segment_size=1000)


def test_bad_names_and_files_are_refused_before_any_call(tmp_path: Path, files: list[Path]) -> None:
    store = FakeObjectStore()
    with pytest.raises(ConfigError) as caught:
        publish_objects(
            FakeConnection(store),
            "Bad_Name",
            "camp/run",
            [*files, tmp_path / "missing.png"],
        )
    text = str(caught.value)
    assert "'Bad_Name' is not a valid container name" in text and "missing.png: not a file" in text
    assert store.calls == []


def test_sdk_errors_are_translated_and_redacted(files: list[Path]) -> None:
    store = FakeObjectStore()
    failure = sdk.HttpException("boom with secret-app-cred-123 in it")
    failure.status_code = 503
    store.fail_with = failure
    with pytest.raises(CloudUnavailable) as caught:
        publish_objects(
            FakeConnection(store),
            "results",
            "camp/run",
            files,
            cloud="devcloud-public",
            redact=Redactor(["secret-app-cred-123"]),
        )
    assert "devcloud-public: read container results: server error 503" in str(caught.value)
    assert "secret-app-cred-123" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# ----- settings from a connection's extra -----
def test_store_settings_name_each_bad_field() -> None:
    settings = store_settings(
        {"cloud": "devcloud-public", "container": "results", "segment_size_mb": 2}, "conn x"
    )
    assert (settings.cloud, settings.container, settings.segment_size) == (
        "devcloud-public",
        "results",
        2 * MIB,
    )
    with pytest.raises(ConfigError) as caught:
        store_settings({"container": "Bad_Name", "segment_size_mb": 0, "cloudd": "x"}, "conn x")
    text = str(caught.value)
    assert text.startswith("conn x: ")
    for field in ("extra.cloud", "extra.container", "extra.segment_size_mb", "extra.cloudd"):
        assert field in text, field
    with pytest.raises(ConfigError, match="extra: must be a JSON object"):
        store_settings("devcloud-public", "conn x")


def test_connect_names_a_missing_file_or_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"extra.clouds_yaml: no file"):
        connect(store_settings({"cloud": "c", "clouds_yaml": str(tmp_path / "no.yaml")}, "x"), "x")
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  other:\n    auth: {auth_url: 'http://127.0.0.1:1/v3'}\n")
    with pytest.raises(ConfigError, match=r"extra.cloud: 'mine' cannot be loaded from"):
        connect(store_settings({"cloud": "mine", "clouds_yaml": str(clouds)}, "x"), "x")


# ----- the DAG's target: params and the Airflow connection -----
def test_results_target_from_params_and_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_OPENSTACK_RESULTS", raising=False)
    assert results_target({}) is None  # no container named, no connection: no upload
    with pytest.raises(CampaignError, match="connection 'openstack_results' is not defined"):
        results_target({"results_container": "results"})
    with pytest.raises(CampaignError, match="param 'results_container': 'Res' is not a valid"):
        results_target({"results_container": "Res"})
    with pytest.raises(CampaignError, match="param 'results_overwrite' must be true or false"):
        results_target({"results_overwrite": "yes"})
    connection = {"conn_type": "generic", "extra": {"cloud": "devcloud-public"}}
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps(connection))
    assert results_target({"results_container": ""}) is None  # no default container either
    target = results_target({"results_container": "results", "results_overwrite": True})
    assert target is not None
    assert (target.container, target.overwrite, target.settings.cloud) == (
        "results",
        True,
        "devcloud-public",
    )
    connection["extra"] = {"cloud": "devcloud-public", "container": "default-results"}
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps(connection))
    target = results_target({"results_container": ""})
    assert target is not None and target.container == "default-results"
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps({"extra": {"clud": "x"}}))
    with pytest.raises(ConfigError, match=r"Airflow connection 'openstack_results'.*extra.cloud"):
        results_target({"results_container": "results"})


def test_results_package_imports_no_airflow() -> None:
    """The object-store code serves any caller; only bursting.airflow knows Airflow."""
    for path in (REPO / "bursting" / "results").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "airflow" for n in names), path


def merge_outputs(directory: Path) -> Path:
    directory.mkdir(parents=True)
    write(directory / "jet_pt.png", b"png")
    write(directory / "merged.root", b"root")
    write(directory / "summary.json", b'{"jobs": 1}\n')
    return directory / "summary.json"


def test_publish_without_a_container_only_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bursting.airflow.campaign import publish

    monkeypatch.delenv("AIRFLOW_CONN_OPENSTACK_RESULTS", raising=False)
    summary = merge_outputs(tmp_path / "merged")
    folder = Path(publish(str(summary), str(tmp_path / "results"), "camp", "run:1", {}))
    assert folder == tmp_path / "results" / "camp" / "run_1"
    assert sorted(p.name for p in folder.iterdir()) == ["jet_pt.png", "merged.root", "summary.json"]
    assert "objects" not in json.loads((folder / "summary.json").read_text())


def test_publish_with_a_bad_connection_copies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bursting.airflow.campaign import publish

    extra = {"cloud": "c", "clouds_yaml": str(tmp_path / "missing.yaml")}
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps({"extra": extra}))
    summary = merge_outputs(tmp_path / "merged")
    with pytest.raises(ConfigError, match=r"Airflow connection 'openstack_results'.*clouds_yaml"):
        publish(str(summary), str(tmp_path / "results"), "camp", "r", {"results_container": "abc"})
    assert not (tmp_path / "results").exists()
