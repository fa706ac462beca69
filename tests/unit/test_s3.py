"""Publishing results to S3 without an endpoint: the multipart ETag, verification of multipart
objects, the S3 settings and their errors, the credential lookup, botocore errors translated and
redacted, and S3Store with publish.publish against a stateful fake of boto3's S3 client (the
third-party edge): multipart parts with their Content-MD5, abort on failure, no-op, conflict,
overwrite."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bursting.errors import AuthError, CloudUnavailable, ConfigError, PermanentError
from bursting.results.digests import file_digests, multipart_etag, slo_etag
from bursting.results.publish import ChecksumMismatch, ObjectConflict, publish
from bursting.results.rules import RemoteObject, verify
from bursting.results.s3 import MAX_PARTS, Redact, S3Store, open_s3, translate
from bursting.results.settings import S3Settings, SwiftSettings, open_store, store_settings

MIB = 1 << 20
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ----- the multipart ETag -----
def test_multipart_etag_is_the_md5_of_the_raw_part_digests_and_the_count() -> None:
    parts = [b"a" * 100, b"b" * 100, b"c" * 7]
    raw = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    expected = hashlib.md5(raw, usedforsecurity=False).hexdigest() + "-3"
    assert multipart_etag([md5(p) for p in parts]) == expected
    # Swift's SLO ETag joins the hex text instead: the two must not be confused.
    assert multipart_etag([md5(p) for p in parts]).split("-")[0] != slo_etag(
        [md5(p) for p in parts]
    )


def test_multipart_etag_of_a_known_upload() -> None:
    """One part of b"hello": the md5 of its 16-byte digest (the value from
    `printf hello | openssl md5 -binary | openssl md5`), then "-1"."""
    assert multipart_etag([md5(b"hello")]) == "62109206880d38a4010a98e11243924a-1"


# ----- verification of a multipart object -----
def multipart(data: bytes, part: int, sha: str | None = "same") -> RemoteObject:
    pieces = [data[i : i + part] for i in range(0, len(data), part)]
    return RemoteObject(
        len(data),
        multipart_etag([md5(p) for p in pieces]),
        hashlib.sha256(data).hexdigest() if sha == "same" else sha,
        part_sizes=tuple(len(p) for p in pieces),
    )


def test_verify_a_multipart_object(tmp_path: Path) -> None:
    data = os.urandom(2500)
    local = file_digests(write(tmp_path / "f", data), 1000)
    assert verify(local, multipart(data, 1000)) == []
    other = bytearray(data)
    other[1500] ^= 1
    damaged = multipart(bytes(other), 1000, sha=local.sha256)
    (problem,) = verify(local, damaged)
    assert problem.startswith(f"multipart ETag {damaged.etag}, local ") and problem.endswith("-3")
    # Cut with another part size: wrong against this run's pieces, right against its own.
    assert verify(local, multipart(data, 700)) != []
    from bursting.results.publish import differences

    assert differences(tmp_path / "f", local, multipart(data, 700)) == []


# ----- settings -----
def s3(**extra: Any) -> dict[str, Any]:
    return {"kind": "s3", "endpoint_url": "http://127.0.0.1:8080", **extra}


def test_s3_settings_with_defaults_and_login_password() -> None:
    settings = store_settings(s3(container="results"), "conn x", login="AK", password=SECRET)
    assert isinstance(settings, S3Settings)
    assert settings.keys() == ("AK", SECRET)
    assert (settings.addressing_style, settings.segment_size, settings.container) == (
        "path",
        64 * MIB,
        "results",
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    # no kind: Swift, as before
    assert isinstance(store_settings({"cloud": "c"}, "conn x"), SwiftSettings)


@pytest.mark.parametrize(
    ("extra", "login", "password", "expected"),
    [
        ({"kind": "gcs"}, None, None, "extra.kind: must be one of swift, s3"),
        (s3(part_size_mb=1), None, None, "extra.part_size_mb: must be >= 5"),
        (s3(part_size_mb=6000), None, None, "extra.part_size_mb: must be <= 5120"),
        (s3(endpoint_url="127.0.0.1:8080"), None, None, "extra.endpoint_url: '127.0.0.1:8080'"),
        (s3(endpoint_url="http://k:s@host"), None, None, "extra.endpoint_url: must not carry"),
        (s3(container="Bad_Bucket"), None, None, "extra.container: 'Bad_Bucket' is not a valid"),
        (s3(addressing_style="sideways"), None, None, "extra.addressing_style"),
        (s3(bucket="x"), None, None, "extra.bucket: is not a known key"),
        (s3(), "AK", None, "login and password: the access key id and secret access key"),
        (s3(aws_access_key_id="AK"), None, None, "extra.aws_access_key_id and extra.aws_secret"),
        (s3(aws_access_key_id="AK"), "AK", SECRET, "login/password and extra.aws_access_key_id"),
        ({"cloud": "c", "endpoint_url": "http://h"}, None, None, "endpoint_url are S3 keys; set"),
        ({"cloud": "c"}, "AK", SECRET, "login/password: not used for kind swift"),
    ],
)
def test_bad_settings_name_the_field_and_never_the_secret(
    extra: dict[str, Any], login: str | None, password: str | None, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        store_settings(
            extra, "Airflow connection 'openstack_results'", login=login, password=password
        )
    text = str(caught.value)
    assert text.startswith("Airflow connection 'openstack_results': ")
    assert expected in text
    assert SECRET not in text


def test_a_secret_of_the_wrong_type_is_not_quoted() -> None:
    with pytest.raises(ConfigError) as caught:
        store_settings(s3(aws_access_key_id="AK", aws_secret_access_key=12345678, x=SECRET), "c")
    assert "12345678" not in str(caught.value)
    assert "extra.aws_secret_access_key" in str(caught.value)


# ----- the credential lookup -----
@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment where the usual AWS lookup finds nothing (and never asks an instance
    metadata service)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def credentials_of(store: S3Store) -> tuple[str, str]:
    found = store.client._request_signer._credentials.get_frozen_credentials()
    return found.access_key, found.secret_key


def test_keys_from_the_settings(no_aws: Path) -> None:
    settings = store_settings(s3(region_name="us-east-1"), "c", login="AK", password=SECRET)
    store = open_store(settings, "results", "c")
    assert isinstance(store, S3Store)
    assert credentials_of(store) == ("AK", SECRET)
    assert store.client.meta.endpoint_url == "http://127.0.0.1:8080"
    assert store.client.meta.region_name == "us-east-1"
    assert store.url("camp/run 1/a.png") == "http://127.0.0.1:8080/results/camp/run%201/a.png"
    assert store.redact(f"x {SECRET} y") == "x ******** y"


def test_keys_from_the_environment(no_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    store = open_s3(S3Settings.model_validate(s3()), "results", "c")
    assert credentials_of(store) == ("ENVKEY", SECRET)
    assert store.redact(SECRET) == "********"  # found ones are redacted too


def test_keys_and_endpoint_from_a_profile(no_aws: Path) -> None:
    (no_aws / "aws-credentials").write_text(
        f"[results]\naws_access_key_id = PROFKEY\naws_secret_access_key = {SECRET}\n"
    )
    (no_aws / "aws-config").write_text(
        "[profile results]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9999\n"
    )
    settings = S3Settings.model_validate({"kind": "s3", "profile_name": "results"})
    store = open_s3(settings, "results", "c")
    assert credentials_of(store) == ("PROFKEY", SECRET)
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9999"
    assert store.label == "S3 http://127.0.0.1:9999"


def test_no_credentials_or_no_profile_is_a_config_error(no_aws: Path) -> None:
    with pytest.raises(ConfigError, match=r"c: no S3 credentials found; give the access key id"):
        open_s3(S3Settings.model_validate(s3()), "results", "c")
    with pytest.raises(ConfigError, match=r"extra.profile_name: no profile 'nope'"):
        open_s3(S3Settings.model_validate(s3(profile_name="nope")), "results", "c")


def test_virtual_addressing_urls(no_aws: Path) -> None:
    settings = store_settings(
        s3(endpoint_url="https://s3.example.org", addressing_style="virtual"),
        "c",
        login="AK",
        password=SECRET,
    )
    store = open_store(settings, "results", "c")
    assert isinstance(store, S3Store)
    assert store.url("a/b.png") == "https://results.s3.example.org/a/b.png"


# ----- botocore's errors -----
def client_error(status: int, code: str, message: str = "no", op: str = "PutObject") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        op,
    )


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (client_error(403, "SignatureDoesNotMatch"), AuthError, "refused our credentials"),
        (client_error(403, "InvalidAccessKeyId"), AuthError, "check the access key id"),
        (client_error(403, "AccessDenied"), AuthError, "not allowed (403 AccessDenied)"),
        (client_error(403, "403", "Forbidden", "HeadBucket"), AuthError, "403): check the acc"),
        (client_error(503, "SlowDown"), Exception, "rate limited"),
        (client_error(500, "InternalError"), CloudUnavailable, "server error 500"),
        (client_error(400, "EntityTooSmall"), PermanentError, "refused (400 EntityTooSmall)"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), CloudUnavailable, "Could not"),
    ],
)
def test_botocore_errors_are_translated(exc: Exception, kind: type[Exception], text: str) -> None:
    error = translate(exc, "S3 http://h: upload x", Redact([SECRET]))
    assert isinstance(error, kind) and text in str(error)
    assert str(error).startswith("S3 http://h: upload x: ")


def test_a_secret_in_an_error_is_redacted() -> None:
    error = translate(client_error(400, "Bad", f"echoed {SECRET}"), "S3 x: op", Redact([SECRET]))
    assert SECRET not in str(error) and "********" in str(error)


# ----- S3Store + publish against a fake boto3 client -----
class FakeS3Client:
    """boto3's S3 client as S3Store uses it: buckets and objects in memory, Content-MD5 checked
    like S3 does (400 BadDigest), multipart uploads assembled with S3's ETag rule, computed here
    from raw digests independently of the code under test."""

    def __init__(self) -> None:
        self.meta = SimpleNamespace(
            endpoint_url="http://127.0.0.1:8080",
            region_name="us-east-1",
            config=SimpleNamespace(s3={"addressing_style": "path"}),
        )
        self.buckets: set[str] = set()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail_part: int | None = None
        self.lose_objects = False

    @staticmethod
    def _missing(op: str) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": "404", "Message": "Not Found"},
                "ResponseMetadata": {"HTTPStatusCode": 404},
            },
            op,
        )

    @staticmethod
    def _check_md5(data: bytes, content_md5: str) -> None:
        if base64.b64decode(content_md5) != hashlib.md5(data, usedforsecurity=False).digest():
            raise client_error(400, "BadDigest", "The Content-MD5 you specified did not match")

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        if Bucket not in self.buckets:
            raise self._missing("HeadBucket")
        return {}

    def create_bucket(self, Bucket: str) -> dict[str, Any]:
        self.calls.append(f"create-bucket {Bucket}")
        self.buckets.add(Bucket)
        return {}

    def head_object(self, Bucket: str, Key: str, PartNumber: int | None = None) -> dict[str, Any]:
        found = self.objects.get((Bucket, Key))
        if found is None:
            raise self._missing("HeadObject")
        length = len(found["data"])
        if PartNumber is not None:
            length = (found["parts"] or [length])[PartNumber - 1]
        return {"ContentLength": length, "ETag": f'"{found["etag"]}"', "Metadata": found["meta"]}

    def put_object(
        self, Bucket: str, Key: str, Body: Any, ContentMD5: str, Metadata: dict[str, str]
    ) -> dict[str, Any]:
        self.calls.append(f"put {Key}")
        data = Body.read()
        self._check_md5(data, ContentMD5)
        if not self.lose_objects:
            self.objects[(Bucket, Key)] = {
                "data": data,
                "etag": md5(data),
                "meta": dict(Metadata),
                "parts": None,
            }
        return {"ETag": f'"{md5(data)}"'}

    def create_multipart_upload(
        self, Bucket: str, Key: str, Metadata: dict[str, str]
    ) -> dict[str, Any]:
        upload_id = f"upload-{len(self.uploads)}"
        self.uploads[upload_id] = {"key": Key, "meta": dict(Metadata), "parts": {}}
        self.calls.append(f"start {Key}")
        return {"UploadId": upload_id}

    def upload_part(
        self,
        Bucket: str,
        Key: str,
        UploadId: str,
        PartNumber: int,
        Body: Any,
        ContentLength: int,
        ContentMD5: str,
    ) -> dict[str, Any]:
        self.calls.append(f"part {PartNumber}")
        if PartNumber == self.fail_part:
            raise client_error(500, "InternalError", "the part went nowhere")
        data = Body.read()
        assert len(data) == ContentLength
        self._check_md5(data, ContentMD5)
        self.uploads[UploadId]["parts"][PartNumber] = data
        # botocore's default: a CRC32 per part, which S3 then wants back at completion.
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        return {"ETag": f'"{md5(data)}"', "ChecksumCRC32": crc}

    def complete_multipart_upload(
        self, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict[str, Any]
    ) -> dict[str, Any]:
        upload = self.uploads.pop(UploadId)
        for part in MultipartUpload["Parts"]:
            data = upload["parts"][part["PartNumber"]]
            if base64.b64decode(part.get("ChecksumCRC32", "")) != zlib.crc32(data).to_bytes(
                4, "big"
            ):
                raise client_error(400, "InvalidPart", "the part's checksum is missing or wrong")
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        pieces = [upload["parts"][n] for n in numbers]
        raw = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in pieces)
        etag = f"{hashlib.md5(raw, usedforsecurity=False).hexdigest()}-{len(pieces)}"
        self.objects[(Bucket, Key)] = {
            "data": b"".join(pieces),
            "etag": etag,
            "meta": upload["meta"],
            "parts": [len(p) for p in pieces],
        }
        self.calls.append(f"complete {Key}")
        return {"ETag": f'"{etag}"'}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> dict[str, Any]:
        self.calls.append(f"abort {Key}")
        self.uploads.pop(UploadId, None)
        return {}

    def delete_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(f"delete {Key}")
        self.objects.pop((Bucket, Key), None)
        return {}

    def close(self) -> None:
        pass


PART = 1000  # S3 needs 5 MiB (the settings check it); the store takes any size


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return [
        write(tmp_path / "jet_pt.png", b"png" * 100),
        write(tmp_path / "merged.root", os.urandom(2 * PART + 321)),
        write(tmp_path / "summary.json", b'{"jobs": 8}\n'),
    ]


def s3_publish(client: FakeS3Client, files: list[Path], **kwargs: Any) -> Any:
    store = S3Store(client, "results", Redact([SECRET]))
    return publish(store, "camp/run", files, segment_size=PART, **kwargs)


def test_publish_multipart_then_again_is_unchanged(files: list[Path]) -> None:
    client = FakeS3Client()
    first = s3_publish(client, files)
    assert [o.name for o in first] == [f"camp/run/{p.name}" for p in files]
    assert [o.segments for o in first] == [0, 3, 0]
    assert client.calls == [
        "create-bucket results",
        "put camp/run/jet_pt.png",
        "start camp/run/merged.root",
        "part 1",
        "part 2",
        "part 3",
        "complete camp/run/merged.root",
        "put camp/run/summary.json",
    ]
    stored = client.objects[("results", "camp/run/merged.root")]
    assert stored["data"] == files[1].read_bytes() and stored["parts"] == [PART, PART, 321]
    assert stored["meta"] == {"sha256": hashlib.sha256(stored["data"]).hexdigest()}
    assert first[1].url == "http://127.0.0.1:8080/results/camp/run/merged.root"
    client.calls.clear()
    again = s3_publish(client, files)
    assert [o.unchanged for o in again] == [True, True, True] and client.calls == []
    assert [o.segments for o in again] == [0, 3, 0]


def test_an_object_cut_with_another_part_size_is_still_unchanged(files: list[Path]) -> None:
    client = FakeS3Client()
    publish(S3Store(client, "results", Redact([])), "camp/run", files, segment_size=1200)
    client.calls.clear()
    # This run cuts at 1000 bytes: the file is read in the stored 1200-byte parts to compare.
    again = s3_publish(client, files)
    assert [o.unchanged for o in again] == [True, True, True] and client.calls == []
    assert again[1].segments == 2


def test_changed_content_is_a_conflict_then_replaced_with_overwrite(files: list[Path]) -> None:
    client = FakeS3Client()
    s3_publish(client, files)
    files[1].write_bytes(os.urandom(PART + 1))
    client.calls.clear()
    with pytest.raises(ObjectConflict) as caught:
        s3_publish(client, files, overwrite_hint="results_overwrite=true")
    assert caught.value.names == ["camp/run/merged.root"]
    assert "its content differs" in str(caught.value) and "results_overwrite=true" in str(
        caught.value
    )
    assert client.calls == []
    replaced = s3_publish(client, files, overwrite=True)
    assert [o.unchanged for o in replaced] == [True, False, True]
    assert replaced[1].segments == 2
    assert client.calls == [
        "delete camp/run/merged.root",
        "start camp/run/merged.root",
        "part 1",
        "part 2",
        "complete camp/run/merged.root",
    ]
    assert client.objects[("results", "camp/run/merged.root")]["data"] == files[1].read_bytes()


def test_a_failed_part_aborts_the_upload_and_says_retry(files: list[Path]) -> None:
    client = FakeS3Client()
    client.fail_part = 2
    with pytest.raises(CloudUnavailable, match=r"upload part 2 of camp/run/merged.root: server"):
        s3_publish(client, files)
    assert client.calls[-2:] == ["part 2", "abort camp/run/merged.root"]
    assert client.uploads == {} and ("results", "camp/run/merged.root") not in client.objects


def test_a_damaged_body_is_refused_by_its_content_md5(
    files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    def damaged(path: Path, segment_size: int) -> Any:
        return dataclasses.replace(file_digests(path, segment_size), md5="0" * 32)

    monkeypatch.setattr("bursting.results.publish.file_digests", damaged)
    with pytest.raises(
        PermanentError, match=r"upload camp/run/jet_pt.png: refused \(400 BadDigest"
    ):
        s3_publish(FakeS3Client(), files)


def test_an_upload_the_store_did_not_keep_is_an_error(files: list[Path]) -> None:
    client = FakeS3Client()
    client.lose_objects = True
    with pytest.raises(ChecksumMismatch, match=r"jet_pt.png.*nothing stored under the name"):
        s3_publish(client, files)


def test_a_file_of_too_many_parts_is_refused_before_any_upload(
    files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3Store, "max_pieces", 2)
    client = FakeS3Client()
    with pytest.raises(ConfigError, match=r"merged.root: 3 parts of 1000 bytes, more than the 2"):
        s3_publish(client, files)
    assert client.calls == ["create-bucket results"]
    assert MAX_PARTS == 10_000


def test_logs_give_urls_and_no_secret(files: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bursting")
    published = s3_publish(FakeS3Client(), files)
    for item in published:
        assert item.url in caplog.text
    assert "3 parts" in caplog.text and SECRET not in caplog.text
    assert SECRET not in json.dumps([o.to_dict() for o in published])


# ----- the DAG's target: an S3 connection -----
def test_results_target_for_an_s3_connection(no_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bursting.airflow import campaign

    extra = {"kind": "s3", "endpoint_url": "http://127.0.0.1:8080", "container": "results"}
    connection = {"conn_type": "aws", "login": "AK", "password": SECRET, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps(connection))
    target = campaign.results_target({})
    assert target is not None and isinstance(target.settings, S3Settings)
    assert (target.container, target.settings.keys()) == ("results", ("AK", SECRET))
    store = campaign._connect(target)
    assert isinstance(store, S3Store) and store.container == "results"
    assert credentials_of(store) == ("AK", SECRET)

    extra["part_size_mb"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_OPENSTACK_RESULTS", json.dumps(connection))
    with pytest.raises(ConfigError) as caught:
        campaign.results_target({})
    assert "Airflow connection 'openstack_results': extra.part_size_mb: must be >= 5" in str(
        caught.value
    )
    assert SECRET not in str(caught.value)
