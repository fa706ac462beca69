"""Build the worker image once per key, cache it, and say whether the cached one is current.

The image lives in podman's storage as localhost/bursting-worker:<key[:12]>; its manifest (what
is inside) in `cache_root()/worker-image`, outside any clone. Builds hold an exclusive file lock:
concurrent callers wait for the first build and then reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bursting
from bursting.devpool.layout import cache_root
from bursting.errors import ImageError
from bursting.image import manifest as mf
from bursting.image.context import prepare_context
from bursting.image.key import (
    CONTAINERFILE,
    SUITE,
    PayloadRequirement,
    image_key,
    payload_requirements,
    read_inputs,
)
from bursting.image.manifest import ImageInfo
from bursting.image.tools import container_limits, image_id, require_build_tools, run

Log = Callable[[str], None]
IMAGE_PYTHON = "/opt/bursting/bin/python"
PAYLOAD_ATTRIBUTE = "HasBurstingPayload"

# Printed in the image by `podman run`: four sections, read by manifest.parse_description.
DESCRIBE = (
    "condor_version; echo ---; "
    f"{IMAGE_PYTHON} -c 'import platform; print(platform.python_version())'; echo ---; "
    "condor_config_val BurstingPayloadVersion; echo ---; "
    f"{IMAGE_PYTHON} -m pip freeze"
)


@dataclass(frozen=True)
class Checkout:
    """The checkout the image is built from, and the key it gives."""

    root: Path
    requirements: tuple[PayloadRequirement, ...]
    key: str


def image_cache() -> Path:
    return cache_root() / "worker-image"


def checkout_root() -> Path:
    """The clone this `bursting` is imported from (an editable install)."""
    return Path(bursting.__file__).resolve().parents[1]


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def checkout(root: Path | None = None) -> Checkout:
    """Read the checkout and the host's installed payload requirements; no building."""
    root = root or checkout_root()
    requires = importlib.metadata.requires("bursting") or []
    requirements = payload_requirements(requires, _installed)
    key = image_key(read_inputs(root, requirements, bursting.__version__))
    return Checkout(root, requirements, key)


def current_image() -> ImageInfo | None:
    """The cached image for this checkout if podman holds it; never builds."""
    return _current(checkout())


def _current(co: Checkout) -> ImageInfo | None:
    reference = mf.reference_for(co.key)
    manifest = mf.read_manifest(mf.manifest_path(image_cache(), co.key))
    if manifest is None or mf.decide_state(manifest, co.key, image_id(reference)) != "current":
        return None
    return ImageInfo(reference=reference, key=co.key, manifest=manifest)


def ensure_image(log: Log | None = None) -> ImageInfo:
    """The current worker image, built first if needed (minutes, once); at once when cached."""
    say = log or (lambda _message: None)
    co = checkout()
    found = _current(co)
    if found is not None:
        return found
    cache = image_cache()
    with _exclusive(cache / "build.lock"):
        found = _current(co)  # another caller may have built it while we waited
        if found is not None:
            return found
        return _build(co, cache, say)


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(co: Checkout, cache: Path, say: Log) -> ImageInfo:
    require_build_tools()
    reference = mf.reference_for(co.key)
    log_file = cache / "build.log"
    log_file.write_text(f"worker image {reference} from {co.root}\n")
    say(
        f"building the worker image {reference} (about 2.5 minutes the first time, 30 s after a "
        f"payload change; log {log_file})"
    )
    started = time.monotonic()
    steps: dict[str, float] = {}

    context = cache / "context"
    requested = prepare_context(co.root, context, cache, co.requirements, say)
    steps["context"] = round(time.monotonic() - started, 1)

    say("buildah bud (the Debian and HTCondor layer is cached after the first build)")
    mark = time.monotonic()
    run(
        [
            "buildah", "bud", "--layers", "--isolation", "chroot",
            "-f", str(context / CONTAINERFILE.name),
            "--label", f"{mf.KEY_LABEL}={co.key}",
            "--label", f"{mf.VERSION_LABEL}={bursting.__version__}",
            "-t", reference, str(context),
        ],
        timeout=1800,
        log_file=log_file,
        what="buildah bud",
    )  # fmt: skip
    steps["buildah"] = round(time.monotonic() - mark, 1)
    shutil.rmtree(context, ignore_errors=True)

    manifest = _describe(reference, co, requested, log_file)
    manifest["build_seconds"] = round(time.monotonic() - started, 1)
    manifest["build_steps_seconds"] = steps
    mf.write_manifest(mf.manifest_path(cache, co.key), manifest)
    say(f"worker image {reference} built in {manifest['build_seconds']} s")
    return ImageInfo(reference=reference, key=co.key, manifest=manifest)


def _describe(
    reference: str, co: Checkout, requested: list[str], log_file: Path
) -> dict[str, object]:
    """What is inside the image, asked of the image itself (no network, the host unseen)."""
    built_id = image_id(reference)
    if built_id is None:
        raise ImageError(f"buildah reported success but podman has no {reference}; see {log_file}")
    text = run(
        ["podman", "run", "--rm", "--runtime", "runc", "--network", "none",
         *container_limits(), reference, "sh", "-c", DESCRIBE],
        timeout=300,
        log_file=log_file,
        what="podman run (describe the image)",
    )  # fmt: skip
    try:
        inside = mf.parse_description(text)
    except ValueError as exc:
        raise ImageError(f"cannot read what is in {reference}: {exc}") from None
    if inside["advertised_payload_version"] != bursting.__version__:
        raise ImageError(
            f"{reference} advertises BurstingPayloadVersion "
            f"{inside['advertised_payload_version']!r}, not {bursting.__version__!r}; "
            f"check {co.root / CONTAINERFILE}"
        )
    return {
        "reference": reference,
        "image_id": built_id,
        "key": co.key,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "debian_suite": SUITE,
        "payload_version": bursting.__version__,
        "payload_requirements": requested,
        "checkout": str(co.root),
        **inside,
    }


def image_status() -> dict[str, object]:
    """State (current, stale, missing) of this checkout's image, and what the cache records."""
    co = checkout()
    cache = image_cache()
    reference = mf.reference_for(co.key)
    manifest = mf.read_manifest(mf.manifest_path(cache, co.key))
    if manifest is not None:
        state = mf.decide_state(manifest, co.key, image_id(reference))
    else:
        manifest = mf.latest_manifest(cache)  # an image for other inputs, if any
        state = mf.decide_state(manifest, co.key, None)
    return {
        "state": state,
        "reference": reference,
        "key": co.key,
        "built_at": manifest.get("built_at") if manifest else None,
        "build_seconds": manifest.get("build_seconds") if manifest else None,
        "manifest": manifest or {},
    }
