"""The object store as an S3 bucket, through boto3: Swift's s3api (a Swift container seen as a
bucket in the same account) or any site that speaks S3.

A file larger than one part goes up as a multipart upload of equal parts (the last one shorter),
each sent with its Content-MD5 so the store refuses a damaged part; a failed upload is aborted so
no parts are left behind. The object's ETag is then the md5 of its parts' md5s and "-N", which is
computed locally and compared after upload; its sha256 travels as object metadata. botocore's
errors are translated here into the project's, redacted, without their chains.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from bursting.errors import (
    AuthError,
    BurstingError,
    CloudUnavailable,
    ConfigError,
    PermanentError,
    TransientError,
)
from bursting.results.digests import FileDigests, chunk_sizes
from bursting.results.rules import SHA256_KEY, RemoteObject

if TYPE_CHECKING:
    from bursting.results.settings import S3Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# S3's limit on one multipart upload; Swift's s3api allows 1000 unless configured otherwise
# (it refuses part 1001 with a message naming the limit).
MAX_PARTS = 10_000
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 120.0  # one call: a part upload included
RETRY_SECONDS = 15.0
# Answers that mean the credentials are wrong, not the request.
_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
_MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
# What an UploadPart answer may carry that CompleteMultipartUpload wants back for the part.
_PART_CHECKSUMS = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)


class Redact:
    """Replaces each secret (secret access key, session token) by ****."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text


def translate(exc: BaseException, where: str, redact: Redact) -> BurstingError:
    """The project's error for one failed botocore call; `where` names the store and the call."""
    from botocore import exceptions as boto  # type: ignore[import-untyped]

    if isinstance(exc, BurstingError):
        return exc
    text = redact(" ".join(str(exc).split())[:500] or type(exc).__name__)
    if isinstance(exc, boto.ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(exc.response.get("Error", {}).get("Code") or "")
        if code in _AUTH_CODES or status == 401:
            return AuthError(
                f"{where}: the S3 endpoint refused our credentials ({code or status}); check "
                "the access key id and secret access key (wrong, deleted, or for another "
                "project or endpoint) and the region the requests are signed for"
            )
        if status == 429 or code in ("SlowDown", "RequestLimitExceeded"):
            return TransientError(f"{where}: rate limited: {text}", RETRY_SECONDS)
        if status >= 500:
            return CloudUnavailable(f"{where}: server error {status}: {text}", RETRY_SECONDS)
        if status == 403 and code.isdigit():  # a HEAD's answer has no body to tell which
            return AuthError(
                f"{where}: refused (403): check the access key id and secret access key, and "
                "the user's rights on the bucket"
            )
        if status == 403:
            return AuthError(f"{where}: not allowed (403 {code}): {text}; check the user's rights")
        return PermanentError(f"{where}: refused ({status} {code}): {text}")
    if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return ConfigError(where, [f"{text}; {CREDENTIALS_FIX}"])
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...
    return CloudUnavailable(f"{where}: {type(exc).__name__}: {text}", RETRY_SECONDS)


CREDENTIALS_FIX = (
    "give the access key id and secret access key as the Airflow connection's login and "
    "password (or extra.aws_access_key_id / extra.aws_secret_access_key), or through the usual "
    "AWS lookup: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (extra.profile_name "
    "or AWS_PROFILE) in ~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE"
)


def _is_missing(exc: BaseException) -> bool:
    from botocore import exceptions as boto

    if not isinstance(exc, boto.ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code") or "")
    return code in _MISSING_CODES


def _b64(md5_hex: str) -> str:
    """Content-MD5 is the base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


class S3Store:
    """One bucket at one S3 endpoint; implements base.ObjectStore over a boto3 S3 client."""

    piece_word = "parts"
    max_pieces: int | None = MAX_PARTS

    def __init__(self, client: Any, bucket: str, redact: Redact, label: str | None = None) -> None:
        self.client = client
        self.container = bucket
        self.redact = redact
        self.endpoint = str(client.meta.endpoint_url).rstrip("/")
        self.label = label or f"S3 {self.endpoint}"
        self._virtual = client.meta.config.s3 and client.meta.config.s3.get("addressing_style") in (
            "virtual",
        )
        self._part_size: int | None = None

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # botocore's: translated, redacted, chain dropped
            raise translate(exc, f"{self.label}: {operation}", self.redact) from None

    def open(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.container)
        except Exception as exc:
            if not _is_missing(exc):
                raise translate(
                    exc, f"{self.label}: read bucket {self.container}", self.redact
                ) from None
            self._create_bucket()

    def _create_bucket(self) -> None:
        region = self.client.meta.region_name
        extra: dict[str, Any] = {}
        if region and region not in ("us-east-1", "aws-global"):
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.call(
            f"create bucket {self.container}",
            self.client.create_bucket,
            Bucket=self.container,
            **extra,
        )
        log.info("%s: created bucket %s", self.label, self.container)

    def close(self) -> None:
        self.client.close()

    def piece_size(self, wanted: int) -> int:
        self._part_size = wanted
        return wanted

    def url(self, name: str) -> str:
        if self._virtual:
            parts = urlsplit(self.endpoint)
            return f"{parts.scheme}://{self.container}.{parts.netloc}/{quote(name)}"
        return f"{self.endpoint}/{quote(self.container)}/{quote(name)}"

    def observe(self, name: str) -> RemoteObject | None:
        """HEAD the object; for a multipart object also HEAD its first part, whose size tells
        how the object is cut (every part but the last has it). None if absent."""
        try:
            head = self.client.head_object(Bucket=self.container, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise translate(exc, f"{self.label}: read object {name}", self.redact) from None
        size = int(head.get("ContentLength") or 0)
        etag = str(head.get("ETag") or "").strip('"')
        metadata = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
        part_sizes = None
        if "-" in etag:
            part_sizes = chunk_sizes(size, self._first_part_size(name, size))
        return RemoteObject(size, etag, metadata.get(SHA256_KEY), part_sizes=part_sizes)

    def _first_part_size(self, name: str, size: int) -> int:
        try:
            first = self.client.head_object(Bucket=self.container, Key=name, PartNumber=1)
        except Exception as exc:
            from botocore import exceptions as boto

            if not isinstance(exc, boto.ClientError) or _is_missing(exc):
                raise translate(exc, f"{self.label}: read part 1 of {name}", self.redact) from None
            # A store without part-number reads: assume this run's part size.
            log.debug("%s: no part-number HEAD (%s); assuming this run's part size", name, exc)
            return self._part_size or size
        return int(first.get("ContentLength") or size) or size

    def upload(self, path: Path, name: str, local: FileDigests) -> None:
        metadata = {SHA256_KEY: local.sha256}
        if not local.segmented:
            with path.open("rb") as body:
                self.call(
                    f"upload {name}",
                    self.client.put_object,
                    Bucket=self.container,
                    Key=name,
                    Body=body,
                    ContentMD5=_b64(local.md5),
                    Metadata=metadata,
                )
            return
        started = self.call(
            f"start the multipart upload of {name}",
            self.client.create_multipart_upload,
            Bucket=self.container,
            Key=name,
            Metadata=metadata,
        )
        upload_id = str(started["UploadId"])
        try:
            parts = self._upload_parts(path, name, local, upload_id)
            self.call(
                f"complete the multipart upload of {name}",
                self.client.complete_multipart_upload,
                Bucket=self.container,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort(name, upload_id)
            raise

    def _upload_parts(
        self, path: Path, name: str, local: FileDigests, upload_id: str
    ) -> list[dict[str, Any]]:
        from s3transfer.utils import ReadFileChunk  # type: ignore[import-untyped]

        parts: list[dict[str, Any]] = []
        offset = 0
        for number, (size, md5) in enumerate(
            zip(local.chunk_sizes, local.chunk_md5s, strict=True), start=1
        ):
            # A seekable window on the file: a part is never held in memory whole.
            with ReadFileChunk.from_filename(
                str(path), offset, size, enable_callbacks=False
            ) as body:
                answer = self.call(
                    f"upload part {number} of {name}",
                    self.client.upload_part,
                    Bucket=self.container,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=size,
                    ContentMD5=_b64(md5),
                )
            etag = str(answer.get("ETag") or "").strip('"')
            if etag != md5:
                raise PermanentError(
                    f"{self.label}: part {number} of {name}: stored with ETag {etag}, "
                    f"local md5 {md5}"
                )
            # A part's own checksum (botocore adds one by default) goes back with it: S3 refuses
            # to complete an upload whose parts had checksums without them.
            checksums = {k: answer[k] for k in _PART_CHECKSUMS if answer.get(k)}
            parts.append({"ETag": answer["ETag"], "PartNumber": number, **checksums})
            offset += size
        return parts

    def _abort(self, name: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.container, Key=name, UploadId=upload_id)
        except Exception as exc:  # the upload's own error matters more; say what is left
            log.warning(
                "%s: could not abort the multipart upload of %s (its parts may remain): %s",
                self.label,
                name,
                self.redact(str(exc))[:300],
            )

    def delete(self, name: str, remote: RemoteObject) -> None:
        # One DELETE removes a multipart object's parts too (s3api deletes the SLO's segments).
        self.call(f"delete {name}", self.client.delete_object, Bucket=self.container, Key=name)


def open_s3(settings: S3Settings, bucket: str, source: str) -> S3Store:
    """A store over a boto3 client for the settings: credentials from the settings (the Airflow
    connection's login/password or extra) or else the usual AWS lookup (environment, profile,
    shared files). A ConfigError names the field when neither gives credentials."""
    import boto3  # type: ignore[import-untyped]
    from botocore import exceptions as boto
    from botocore.config import Config  # type: ignore[import-untyped]

    try:
        session = boto3.session.Session(
            profile_name=settings.profile_name, region_name=settings.region_name
        )
    except boto.ProfileNotFound:
        raise ConfigError(
            source,
            [
                f"extra.profile_name: no profile {settings.profile_name!r} in the AWS config or "
                "credentials files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, ~/.aws); add "
                "it there or remove profile_name"
            ],
        ) from None
    key, secret = settings.keys() or (None, None)
    secrets: list[str | None] = [secret]
    if key is None:
        try:
            found = session.get_credentials()
        except boto.BotoCoreError as exc:  # a broken profile or credential process
            raise ConfigError(source, [f"S3 credentials: {exc}; {CREDENTIALS_FIX}"]) from None
        if found is None:
            raise ConfigError(source, [f"no S3 credentials found; {CREDENTIALS_FIX}"])
        frozen = found.get_frozen_credentials()
        secrets += [frozen.secret_key, frozen.token]
    client = session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": settings.addressing_style},
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
        ),
    )
    return S3Store(client, bucket, Redact(secrets))
