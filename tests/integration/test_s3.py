"""Campaign results through devcloud's S3 API (Swift's s3api, checked against the public
project's EC2 credential in Keystone) with boto3: a small file and a multipart one published,
read back over S3 and over Swift (the bucket is a container of the same account), re-published
unchanged, refused when a file changed, replaced when asked; then the
mc_production publish step with an Airflow connection of kind s3. Every bucket made here is
deleted at the end, with its segments container."""

from __future__ import annotations

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
from openstack import exceptions as sdk

from bursting.errors import AuthError
from bursting.results.objectstore import publish_objects
from bursting.results.publish import ObjectConflict, PublishedObject, publish
from bursting.results.s3 import S3Store
from bursting.results.settings import open_store, store_settings
from bursting.results.swift import SwiftStore

pytestmark = [pytest.mark.integration]
MIB = 1 << 20
PART_MB = 5  # S3's smallest part
REGION = "us-east-1"  # s3api's `location`


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def endpoint() -> str:
    from bursting.devcloud.layout import HOST, PORTS

    return f"http://{HOST}:{PORTS['swift-proxy']}"


@pytest.fixture
def ec2(devcloud: Any) -> dict[str, str]:
    """The public project's S3 access key and secret, as devcloud wrote them."""
    return dict(json.loads(Path(devcloud.ec2_file).read_text()))


@pytest.fixture
def swift(devcloud: Any) -> Iterator[Any]:
    """openstacksdk as the public project's user: the same account the EC2 credential is for."""
    from bursting.devcloud import PUBLIC_CLOUD, connect

    conn = connect(devcloud.clouds_yaml, PUBLIC_CLOUD)
    yield conn
    conn.close()


@pytest.fixture
def bucket(swift: Any) -> Iterator[str]:
    """A fresh bucket name; the container, its s3api segments container and everything in them
    go after."""
    name = f"it-s3-{uuid.uuid4().hex[:8]}"
    yield name
    store = swift.object_store
    for container in (name, f"{name}+segments"):
        try:
            items = list(store.objects(container))
        except sdk.NotFoundException:
            continue
        for item in items:
            store.delete_object(item.name, container=container, ignore_missing=True)
        store.delete_container(container, ignore_missing=True)


def s3_store(ec2: dict[str, str], bucket: str, **extra: Any) -> S3Store:
    settings = store_settings(
        {"kind": "s3", "endpoint_url": endpoint(), "region_name": REGION, **extra},
        "test",
        login=ec2["access"],
        password=ec2["secret"],
    )
    store = open_store(settings, bucket, "test")
    assert isinstance(store, S3Store)
    return store


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A merge step's outputs: a plot, a ROOT file of three 5 MiB parts, the summary."""
    merged = tmp_path / "work" / "merged"
    merged.mkdir(parents=True)
    (merged / "dimuon_mass.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(40_000))
    (merged / "merged.root").write_bytes(os.urandom(2 * PART_MB * MIB + 123_457))
    (merged / "summary.json").write_text(json.dumps({"campaign": "it", "jobs": 8}) + "\n")
    return merged


def files_of(outputs: Path) -> list[Path]:
    return [*sorted(outputs.glob("*.png")), outputs / "merged.root", outputs / "summary.json"]


def s3_etag(data: bytes, part: int) -> str:
    """What S3 makes of a multipart upload's ETag, computed here independently."""
    pieces = [data[i : i + part] for i in range(0, len(data), part)]
    raw = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in pieces)
    return f"{hashlib.md5(raw, usedforsecurity=False).hexdigest()}-{len(pieces)}"


def assert_stored(
    store: S3Store, swift: Any, bucket: str, objects: list[PublishedObject], files: list[Path]
) -> None:
    """Each object is the file: over S3 (bytes, sha256 metadata, ETag) and over Swift."""
    for item, path in zip(objects, files, strict=True):
        data = path.read_bytes()
        assert (item.size, item.sha256) == (len(data), sha256(data)), item.name
        assert item.url == f"{endpoint()}/{bucket}/{item.name}"
        got = store.client.get_object(Bucket=bucket, Key=item.name)
        assert sha256(got["Body"].read()) == item.sha256, item.name
        assert got["Metadata"]["sha256"] == item.sha256
        expected = s3_etag(data, PART_MB * MIB) if item.segments else hashlib.md5(data).hexdigest()
        assert got["ETag"].strip('"') == expected, item.name
        back = swift.object_store.download_object(item.name, container=bucket)
        assert sha256(back) == item.sha256, item.name
        head = swift.object_store.get_object_metadata(item.name, container=bucket)
        assert {k.lower(): v for k, v in head.metadata.items()}["sha256"] == item.sha256


def segments_of(swift: Any, bucket: str, name: str) -> list[str]:
    """The parts s3api keeps for an object, in the bucket's segments container."""
    try:
        items = list(swift.object_store.objects(f"{bucket}+segments"))
    except sdk.NotFoundException:
        return []
    return sorted(i.name for i in items if i.name.startswith(f"{name}/"))


def test_publish_read_back_republish_conflict_overwrite(
    ec2: dict[str, str], swift: Any, bucket: str, outputs: Path
) -> None:
    store = s3_store(ec2, bucket)
    files = files_of(outputs)
    prefix = "it-campaign/manual__2026-12-03T08_00_00_00_00"
    part = PART_MB * MIB

    started = time.monotonic()
    first = publish(store, prefix, files, segment_size=part)
    took = time.monotonic() - started
    print(f"\nS3: published {len(first)} objects, {sum(o.size for o in first)} bytes: {took:.2f} s")
    assert [o.name for o in first] == [f"{prefix}/{p.name}" for p in files]
    assert [o.segments for o in first] == [0, 3, 0]
    assert not any(o.unchanged for o in first)
    assert_stored(store, swift, bucket, first, files)
    assert len(segments_of(swift, bucket, f"{prefix}/merged.root")) == 3

    def modified() -> dict[str, Any]:
        return {
            o.name: store.client.head_object(Bucket=bucket, Key=o.name)["LastModified"]
            for o in first
        }

    before = modified()
    started = time.monotonic()
    again = publish(store, prefix, files, segment_size=part)
    print(f"S3: re-published unchanged (checksums verified): {time.monotonic() - started:.2f} s")
    assert [o.unchanged for o in again] == [True] * 3
    assert [(o.url, o.sha256, o.segments) for o in again] == [
        (o.url, o.sha256, o.segments) for o in first
    ]
    assert modified() == before

    # The same objects seen through Swift (an SLO for the multipart one): unchanged there too.
    through_swift = publish_objects(swift, bucket, prefix, files)
    assert [o.unchanged for o in through_swift] == [True] * 3

    # The large file changed (now two parts): refused, nothing touched.
    old_root = (outputs / "merged.root").read_bytes()
    (outputs / "merged.root").write_bytes(os.urandom(part + 99))
    with pytest.raises(ObjectConflict) as caught:
        publish(store, prefix, files, segment_size=part)
    assert f"{prefix}/merged.root: its content differs" in str(caught.value)
    assert caught.value.names == [f"{prefix}/merged.root"]
    got = store.client.get_object(Bucket=bucket, Key=f"{prefix}/merged.root")["Body"].read()
    assert sha256(got) == sha256(old_root)

    started = time.monotonic()
    replaced = publish(store, prefix, files, segment_size=part, overwrite=True)
    print(f"S3: replaced one multipart object: {time.monotonic() - started:.2f} s")
    assert [o.unchanged for o in replaced] == [True, False, True]
    assert replaced[1].segments == 2
    assert_stored(store, swift, bucket, replaced, files)
    # Through Swift the new object is an SLO of its 2 parts. (s3api hands the old 3 parts to
    # Swift's object expirer, async: devcloud runs none, so they stay in <bucket>+segments.)
    seen = SwiftStore(swift, bucket, "devcloud-public")
    seen.open()
    remote = seen.observe(f"{prefix}/merged.root")
    assert remote is not None and remote.segments is not None and len(remote.segments) == 2
    assert remote.sha256 == replaced[1].sha256
    after = modified()
    assert {n: t for n, t in after.items() if not n.endswith(".root")} == {
        n: t for n, t in before.items() if not n.endswith(".root")
    }
    store.close()


def test_wrong_secret_is_an_auth_error_without_the_secret(
    ec2: dict[str, str], bucket: str, outputs: Path
) -> None:
    wrong = {**ec2, "secret": "not-the-secret-" + uuid.uuid4().hex}
    store = s3_store(wrong, bucket)
    with pytest.raises(AuthError, match="check the access key id and secret") as caught:
        publish(store, "it", files_of(outputs))
    assert wrong["secret"] not in str(caught.value) and ec2["secret"] not in str(caught.value)


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


def test_campaign_publish_with_an_s3_airflow_connection(
    ec2: dict[str, str],
    swift: Any,
    bucket: str,
    outputs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bursting.airflow import campaign

    extra = {"kind": "s3", "endpoint_url": endpoint(), "region_name": REGION, "part_size_mb": 5}
    connection = {
        "conn_type": "aws",
        "login": ec2["access"],
        "password": ec2["secret"],
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps(connection))
    results = tmp_path / "results"
    run_id = "manual__2026-12-03T08:00:00+00:00"
    params: dict[str, Any] = {"campaign": "it-campaign", "results_container": bucket}
    logged = Collect()
    logger = logging.getLogger("bursting")
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, logged])

    folder = Path(
        campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    )
    summary_text = (folder / "summary.json").read_text()
    objects = json.loads(summary_text)["objects"]
    prefix = "it-campaign/manual__2026-12-03T08_00_00_00_00"
    assert [o["name"] for o in objects] == [f"{prefix}/{p.name}" for p in files_of(outputs)]
    assert [o["segments"] for o in objects] == [0, 3, 0]
    for item, path in zip(objects, files_of(outputs), strict=True):
        assert item["unchanged"] is False and item["sha256"] == sha256(path.read_bytes())
        assert item["url"] == f"{endpoint()}/{bucket}/{item['name']}"
        assert item["url"] in logged.text  # the task log gives each URL
        back = swift.object_store.download_object(item["name"], container=bucket)
        assert sha256(back) == item["sha256"]

    # Again with the keys from the usual AWS lookup (environment), none in the connection.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ec2["access"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ec2["secret"])
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps({"conn_type": "aws", "extra": extra})
    )
    campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    again = json.loads((folder / "summary.json").read_text())["objects"]
    assert [o["unchanged"] for o in again] == [True] * 3

    # A changed plot: refused, naming the DAG param that allows replacing it; then replaced.
    (outputs / "dimuon_mass.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(10))
    with pytest.raises(ObjectConflict, match=r"dimuon_mass\.png.*\n.*results_overwrite=true"):
        campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    params["results_overwrite"] = True
    campaign.publish(str(outputs / "summary.json"), str(results), "it-campaign", run_id, params)
    replaced = json.loads((folder / "summary.json").read_text())["objects"]
    assert [o["unchanged"] for o in replaced] == [False, True, True]

    # The secret is in no log line and no summary.json.
    assert ec2["secret"] not in logged.text
    assert ec2["secret"] not in summary_text + (folder / "summary.json").read_text()
