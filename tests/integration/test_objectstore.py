"""Campaign results in devcloud's real Swift, as the public project's user: published with 1 MiB
segments (the ROOT file becomes a static large object), read back byte for byte, re-published
unchanged, refused when a file changed, replaced when asked; and the mc_production publish step
end to end with its Airflow connection injected the way users do (AIRFLOW_CONN_* as JSON).
Every container made here is deleted at the end."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openstack import exceptions as sdk

from bursting.errors import ConfigError
from bursting.results.objectstore import (
    MIB,
    ChecksumMismatch,
    ObjectConflict,
    PublishedObject,
    publish_objects,
)
from bursting.results.settings import connect, store_settings

pytestmark = [pytest.mark.integration]
SEGMENT = MIB


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def public(devcloud: Any) -> Iterator[tuple[Any, Any]]:
    """(connection, redactor) for devcloud's public project, by its clouds.yaml entry."""
    from bursting.devcloud import PUBLIC_CLOUD

    settings = store_settings(
        {"cloud": PUBLIC_CLOUD, "clouds_yaml": str(devcloud.clouds_yaml)}, "test"
    )
    conn, redact = connect(settings, "test")
    yield conn, redact
    conn.close()


@pytest.fixture
def container(public: tuple[Any, Any]) -> Iterator[str]:
    """A fresh container name; the container and everything in it (segments too) go after."""
    conn, _ = public
    name = f"it-results-{uuid.uuid4().hex[:8]}"
    yield name
    store = conn.object_store
    try:
        items = list(store.objects(name))
    except sdk.NotFoundException:
        return  # never made (the bad-input test checks just that)
    for item in items:
        store.delete_object(item.name, container=name, ignore_missing=True)
    store.delete_container(name, ignore_missing=True)


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A merge step's outputs: plots, a ROOT file larger than two segments, the summary."""
    merged = tmp_path / "work" / "merged"
    merged.mkdir(parents=True)
    (merged / "dimuon_mass.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(40_000))
    (merged / "jet_pt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(30_000))
    (merged / "merged.root").write_bytes(os.urandom(2 * SEGMENT + 123_457))
    (merged / "summary.json").write_text(json.dumps({"campaign": "it", "jobs": 8}) + "\n")
    return merged


class Collect(logging.Handler):
    """What the task would log (Airflow's own logging setup leaves caplog out)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def files_of(outputs: Path) -> list[Path]:
    return [*sorted(outputs.glob("*.png")), outputs / "merged.root", outputs / "summary.json"]


def get(conn: Any, url: str) -> requests.Response:
    """The object's URL as any HTTP client would fetch it, with the user's token."""
    return requests.get(url, headers={"X-Auth-Token": conn.auth_token}, timeout=30)


def assert_stored(
    conn: Any, container: str, objects: list[PublishedObject], files: list[Path]
) -> None:
    for item, path in zip(objects, files, strict=True):
        data = path.read_bytes()
        assert (item.size, item.sha256) == (len(data), sha256(data)), item.name
        back = conn.object_store.download_object(item.name, container=container)
        assert sha256(back) == item.sha256, item.name
        answer = get(conn, item.url)
        assert answer.status_code == 200, (item.url, answer.status_code)
        assert sha256(answer.content) == item.sha256, item.url
        head = conn.object_store.get_object_metadata(item.name, container=container)
        assert {k.lower(): v for k, v in head.metadata.items()}["sha256"] == item.sha256


def test_publish_read_back_republish_conflict_overwrite(
    public: tuple[Any, Any], container: str, outputs: Path
) -> None:
    conn, redact = public
    files = files_of(outputs)
    prefix = "it-campaign/manual__2026-11-23T20_00_00_00_00"

    started = time.monotonic()
    first = publish_objects(
        conn, container, prefix, files, segment_size=SEGMENT, cloud="devcloud-public", redact=redact
    )
    took = time.monotonic() - started
    print(f"\npublished {len(first)} objects, {sum(o.size for o in first)} bytes: {took:.2f} s")
    assert [o.name for o in first] == [f"{prefix}/{p.name}" for p in files]
    assert [o.segments for o in first] == [0, 0, 3, 0]  # merged.root: 1 MiB + 1 MiB + the rest
    assert not any(o.unchanged for o in first)
    assert_stored(conn, container, first, files)
    names = {item.name for item in conn.object_store.objects(container)}
    assert {f"{prefix}/merged.root/{i:06d}" for i in range(3)} <= names
    assert requests.get(first[0].url, timeout=30).status_code == 401  # no token: the URL is private

    before = {
        o.name: conn.object_store.get_object_metadata(o.name, container=container).etag
        for o in first
    }
    started = time.monotonic()
    again = publish_objects(conn, container, prefix, files, segment_size=SEGMENT)
    print(f"re-published unchanged (checksums verified): {time.monotonic() - started:.2f} s")
    assert [o.unchanged for o in again] == [True] * 4
    assert [(o.url, o.sha256, o.segments) for o in again] == [
        (o.url, o.sha256, o.segments) for o in first
    ]

    # one file changed (the large one, now two segments): refused, nothing touched
    old_root = (outputs / "merged.root").read_bytes()
    (outputs / "merged.root").write_bytes(os.urandom(SEGMENT + 99))
    with pytest.raises(ObjectConflict) as caught:
        publish_objects(conn, container, prefix, files, segment_size=SEGMENT)
    message = str(caught.value)
    assert f"{prefix}/merged.root: its content differs" in message and "overwrite" in message
    assert caught.value.names == [f"{prefix}/merged.root"]
    back = conn.object_store.download_object(f"{prefix}/merged.root", container=container)
    assert sha256(back) == sha256(old_root)

    started = time.monotonic()
    replaced = publish_objects(conn, container, prefix, files, segment_size=SEGMENT, overwrite=True)
    print(f"replaced one large object: {time.monotonic() - started:.2f} s")
    assert [o.unchanged for o in replaced] == [True, True, False, True]
    assert replaced[2].segments == 2
    assert_stored(conn, container, replaced, files)
    segments = sorted(
        item.name
        for item in conn.object_store.objects(container)
        if item.name.startswith(f"{prefix}/merged.root/")
    )
    assert segments == [f"{prefix}/merged.root/000000", f"{prefix}/merged.root/000001"]
    after = {
        o.name: conn.object_store.get_object_metadata(o.name, container=container).etag
        for o in replaced
    }
    assert {n: e for n, e in after.items() if not n.endswith(".root")} == {
        n: e for n, e in before.items() if not n.endswith(".root")
    }


def test_a_large_file_in_64_mib_segments(
    public: tuple[Any, Any], container: str, tmp_path: Path
) -> None:
    """The default segment size, timed: a 150 MiB file as three segments, then verified."""
    conn, _ = public
    big = tmp_path / "merged.root"
    with big.open("wb") as handle:
        for _ in range(150):
            handle.write(os.urandom(MIB))
    started = time.monotonic()
    (item,) = publish_objects(conn, container, "it/big", [big])
    took = time.monotonic() - started
    print(f"\n150 MiB in 64 MiB segments, uploaded and verified: {took:.2f} s")
    assert item.segments == 3
    answer = get(conn, item.url)
    assert answer.status_code == 200 and sha256(answer.content) == item.sha256


def test_a_body_that_arrives_damaged_is_refused_and_reported(
    public: tuple[Any, Any], container: str, outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain upload sends its md5 as ETag, so Swift refuses bytes that do not match it;
    openstacksdk does not raise for that refusal, and the check after upload reports it. Here
    the md5 sent is wrong, as it would be for a body damaged on its way."""
    from bursting.results.digests import file_digests

    conn, _ = public

    def damaged(path: Path, segment_size: int) -> Any:
        digests = file_digests(path, segment_size)
        return dataclasses.replace(digests, md5="0" * 32, chunk_md5s=("0" * 32,))

    monkeypatch.setattr("bursting.results.publish.file_digests", damaged)
    with pytest.raises(ChecksumMismatch, match="nothing stored under the name"):
        publish_objects(conn, container, "it/damaged", [outputs / "summary.json"])
    names = [item.name for item in conn.object_store.objects(container)]
    assert names == []


def test_campaign_publish_with_an_airflow_connection(
    devcloud: Any,
    public: tuple[Any, Any],
    container: str,
    outputs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bursting.airflow import campaign
    from bursting.devcloud import PUBLIC_CLOUD

    conn, _ = public
    extra = {"cloud": PUBLIC_CLOUD, "clouds_yaml": str(devcloud.clouds_yaml), "segment_size_mb": 1}
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps({"conn_type": "generic", "extra": extra})
    )
    results = tmp_path / "results"
    run_id = "manual__2026-11-23T20:00:00+00:00"
    params: dict[str, Any] = {"campaign": "it-campaign", "results_container": container}
    logged = Collect()
    logger = logging.getLogger("bursting")
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, logged])

    folder = Path(
        campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    )
    assert {p.name for p in folder.iterdir()} == {p.name for p in files_of(outputs)}
    summary = json.loads((folder / "summary.json").read_text())
    objects = summary["objects"]
    prefix = "it-campaign/manual__2026-11-23T20_00_00_00_00"
    assert [o["name"] for o in objects] == [f"{prefix}/{p.name}" for p in files_of(outputs)]
    for item, path in zip(objects, files_of(outputs), strict=True):
        assert set(item) >= {"name", "url", "sha256", "size", "unchanged"}
        assert item["unchanged"] is False
        answer = get(conn, item["url"])
        assert answer.status_code == 200 and sha256(answer.content) == item["sha256"]
        assert item["sha256"] == sha256(path.read_bytes())
        assert item["url"] in logged.text  # the task log gives each URL
    assert objects[2]["segments"] == 3

    # Published again through the usual clouds.yaml lookup (OS_CLIENT_CONFIG_FILE, no path in
    # the connection): nothing changes.
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(devcloud.clouds_yaml))
    extra.pop("clouds_yaml")
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps({"conn_type": "generic", "extra": extra})
    )
    campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    again = json.loads((folder / "summary.json").read_text())["objects"]
    assert [o["unchanged"] for o in again] == [True] * 4

    # A changed plot: refused, naming the object and the DAG param that allows replacing it.
    (outputs / "jet_pt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(10))
    with pytest.raises(ObjectConflict, match=r"jet_pt\.png.*\n.*results_overwrite=true"):
        campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    params["results_overwrite"] = True
    campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    replaced = json.loads((folder / "summary.json").read_text())["objects"]
    assert [o["unchanged"] for o in replaced] == [True, False, True, True]

    # No credential in anything logged.
    entry = yaml.safe_load(Path(devcloud.clouds_yaml).read_text())["clouds"][PUBLIC_CLOUD]
    assert entry["auth"]["application_credential_secret"] not in logged.text


def test_bad_input_uploads_nothing(
    devcloud: Any,
    public: tuple[Any, Any],
    container: str,
    outputs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bursting.airflow import campaign

    conn, _ = public
    results = tmp_path / "results"
    params: dict[str, Any] = {"campaign": "it-campaign", "results_container": container}
    extra = {"cloud": "no-such-cloud", "clouds_yaml": str(devcloud.clouds_yaml)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps({"conn_type": "generic", "extra": extra})
    )
    with pytest.raises(ConfigError, match=r"extra\.cloud: 'no-such-cloud' cannot be loaded"):
        campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", "r1", params)
    monkeypatch.delenv("AIRFLOW_CONN_OPENSTACK_RESULTS")
    with pytest.raises(campaign.CampaignError, match="'openstack_results' is not defined"):
        campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", "r1", params)
    assert not results.exists()
    assert container not in {c.name for c in conn.object_store.containers()}
