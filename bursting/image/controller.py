"""Build the controller's image (deploy/controller/Containerfile) once per key, and cache it.

Built the way the worker image is: buildah with `--isolation chroot` from the worker image's
cached debootstrap root, so its Debian layer is shared. The image is
localhost/bursting-controller:<key[:12]> in podman's storage; its manifest, the build log and
the downloaded dependency wheels live in `cache_root()/controller-image`, outside any clone.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bursting
from bursting.devpool.layout import cache_root
from bursting.errors import ImageError
from bursting.image import manifest as mf
from bursting.image.build import _exclusive, _installed, checkout_root, image_cache
from bursting.image.context import bursting_wheel, payload_wheels, rootfs_tar
from bursting.image.controller_key import (
    CONTAINERFILE,
    REPOSITORY,
    UID,
    controller_key,
    controller_reference,
    controller_requirements,
    read_controller_inputs,
    requirements_digest,
)
from bursting.image.key import SUITE, PayloadRequirement
from bursting.image.manifest import ImageInfo
from bursting.image.tools import container_limits, image_id, require_build_tools, run

Log = Callable[[str], None]
REQUIREMENTS_FILE = "controller-requirements.txt"
# Printed in the image by `podman run`: uid, Python, pip freeze (sections split by '---').
DESCRIBE = (
    "id -u; echo ---; python -c 'import platform; print(platform.python_version())'; "
    "echo ---; pip freeze"
)


@dataclass(frozen=True)
class ControllerCheckout:
    root: Path
    requirements: tuple[PayloadRequirement, ...]
    key: str


def controller_cache() -> Path:
    return cache_root() / "controller-image"


def controller_checkout(root: Path | None = None) -> ControllerCheckout:
    """Read the checkout and the host's installed versions; no building."""
    root = root or checkout_root()
    requires = importlib.metadata.requires("bursting") or []
    requirements = controller_requirements(requires, _installed)
    key = controller_key(read_controller_inputs(root, requirements, bursting.__version__))
    return ControllerCheckout(root, requirements, key)


def current_controller_image() -> ImageInfo | None:
    """The cached controller image for this checkout if podman holds it; never builds."""
    return _current(controller_checkout())


def _current(co: ControllerCheckout) -> ImageInfo | None:
    reference = controller_reference(co.key)
    manifest = mf.read_manifest(mf.manifest_path(controller_cache(), co.key))
    if manifest is None or mf.decide_state(manifest, co.key, image_id(reference)) != "current":
        return None
    return ImageInfo(reference=reference, key=co.key, manifest=manifest)


def ensure_controller_image(log: Log | None = None) -> ImageInfo:
    """The current controller image, built first if needed; at once when cached. It is also
    tagged with the project's version, the Helm chart's default tag (its appVersion)."""
    say = log or (lambda _message: None)
    co = controller_checkout()
    found = _current(co)
    if found is None:
        cache = controller_cache()
        with _exclusive(cache / "build.lock"):
            found = _current(co)  # another caller may have built it while we waited
            if found is None:
                found = _build(co, cache, say)
    run(["podman", "tag", found.reference, version_reference()], timeout=60, what="podman tag")
    return found


def version_reference() -> str:
    """localhost/bursting-controller:<version>: what the chart runs with its default values."""
    return f"{REPOSITORY}:{bursting.__version__}"


def _dependency_wheels(co: ControllerCheckout, cache: Path, log_file: Path) -> Path:
    """The dependencies' cp313 wheels, downloaded once per set of pinned requirements."""
    lines = [r.pinned or r.as_written for r in co.requirements]
    deps = cache / f"deps-{requirements_digest(lines)}"
    if (deps / REQUIREMENTS_FILE).is_file():
        return deps
    partial = deps.with_name(deps.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    chosen = payload_wheels(co.requirements, partial, log_file)
    (partial / REQUIREMENTS_FILE).write_text("\n".join(chosen) + "\n")
    shutil.rmtree(deps, ignore_errors=True)
    os.replace(partial, deps)
    return deps


def prepare_controller_context(
    co: ControllerCheckout, context: Path, cache: Path, say: Log
) -> None:
    """Fill `context` (emptied first): the worker image's Debian root, dependency wheels, the
    bursting wheel and the Containerfile."""
    shutil.rmtree(context, ignore_errors=True)
    (context / "wheel").mkdir(parents=True)
    log_file = cache / "build.log"
    tar = rootfs_tar(image_cache(), say)  # the worker image's root: one debootstrap for both
    try:
        os.link(tar, context / "rootfs.tar")
    except OSError:
        shutil.copy2(tar, context / "rootfs.tar")
    shutil.copy2(co.root / CONTAINERFILE, context / CONTAINERFILE.name)
    say("fetching the controller's dependency wheels (once per set of versions)")
    shutil.copytree(_dependency_wheels(co, cache, log_file), context / "deps")
    say("building the bursting wheel")
    bursting_wheel(co.root, context / "wheel", log_file)


def _build(co: ControllerCheckout, cache: Path, say: Log) -> ImageInfo:
    require_build_tools()
    reference = controller_reference(co.key)
    log_file = cache / "build.log"
    log_file.write_text(f"controller image {reference} from {co.root}\n")
    say(f"building the controller image {reference} (log {log_file})")
    started = time.monotonic()
    steps: dict[str, float] = {}
    context = cache / "context"
    prepare_controller_context(co, context, cache, say)
    steps["context"] = round(time.monotonic() - started, 1)

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
        what="buildah bud (controller)",
    )  # fmt: skip
    steps["buildah"] = round(time.monotonic() - mark, 1)
    shutil.rmtree(context, ignore_errors=True)

    manifest = _describe(reference, co, log_file)
    manifest["build_seconds"] = round(time.monotonic() - started, 1)
    manifest["build_steps_seconds"] = steps
    mf.write_manifest(mf.manifest_path(cache, co.key), manifest)
    say(f"controller image {reference} built in {manifest['build_seconds']} s")
    return ImageInfo(reference=reference, key=co.key, manifest=manifest)


def _describe(reference: str, co: ControllerCheckout, log_file: Path) -> dict[str, object]:
    """What is inside the image, asked of the image itself, run as its own user."""
    built_id = image_id(reference)
    if built_id is None:
        raise ImageError(f"buildah reported success but podman has no {reference}; see {log_file}")
    text = run(
        ["podman", "run", "--rm", "--runtime", "runc", "--network", "none", "--read-only",
         *container_limits(), "--entrypoint", "sh", reference, "-c", DESCRIBE],
        timeout=300,
        log_file=log_file,
        what="podman run (describe the controller image)",
    )  # fmt: skip
    sections = [s.strip() for s in text.split("\n---\n")]
    if len(sections) != 3 or sections[0] != str(UID):
        raise ImageError(
            f"{reference} should run as uid {UID} and describe itself in 3 sections, got "
            f"{text[:300]!r}; check {co.root / CONTAINERFILE}"
        )
    return {
        "reference": reference,
        "image_id": built_id,
        "key": co.key,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "debian_suite": SUITE,
        "version": bursting.__version__,
        "uid": UID,
        "python_version": sections[1],
        "requirements": [r.pinned or r.as_written for r in co.requirements],
        "pip_freeze": [line for line in sections[2].splitlines() if line.strip()],
        "checkout": str(co.root),
    }
