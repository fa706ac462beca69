"""The real worker image: built once per session (minutes the first time), then reused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bursting.image import IMAGE_PYTHON, ImageInfo, current_image, ensure_image
from bursting.image.tools import container_limits

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]


def podman_run(reference: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            *container_limits(),
            reference,
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_second_ensure_reuses_the_cached_image(worker_image: ImageInfo) -> None:
    started = time.monotonic()
    again = ensure_image()
    elapsed = time.monotonic() - started
    assert again.image_id == worker_image.image_id
    assert again.manifest["built_at"] == worker_image.manifest["built_at"]  # not rebuilt
    assert elapsed < 5, f"a cached ensure_image took {elapsed:.1f}s"
    assert current_image() == again


def test_the_payload_imports_in_the_image_without_network(worker_image: ImageInfo) -> None:
    done = podman_run(
        worker_image.reference,
        IMAGE_PYTHON,
        "-c",
        "import pythia8mc, bursting.physics, bursting.physics.generate; print('ok')",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_container_does_not_see_the_submit_host(worker_image: ImageInfo) -> None:
    paths = [str(REPO), f"/{REPO.parts[1]}"]
    done = podman_run(
        worker_image.reference, "sh", "-c", "for p; do test ! -e \"$p\" || echo \"$p\"; done",
        "sh", *paths,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"visible in the worker: {done.stdout.split()}"


def test_the_image_advertises_the_payload_and_never_runs_as_the_owner(
    worker_image: ImageInfo,
) -> None:
    done = podman_run(
        worker_image.reference,
        "condor_config_val", "HasBurstingPayload", "BurstingPayloadVersion", "STARTD_ATTRS",
        "STARTER_ALLOW_RUNAS_OWNER",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    has, version, attrs, runas = done.stdout.splitlines()
    assert has == "true"
    assert version == f'"{worker_image.manifest["payload_version"]}"'
    assert {"HasBurstingPayload", "BurstingPayloadVersion"} <= set(attrs.split())
    assert runas == "False"


def test_status_json_reports_current_with_what_is_inside(worker_image: ImageInfo) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bursting.cli", "image", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["state"] == "current"
    assert report["reference"] == worker_image.reference
    inside = report["manifest"]
    assert inside["image_id"] == worker_image.image_id
    assert inside["htcondor_version"].count(".") == 2
    assert "pythia8mc==8.317.2" in inside["pip_freeze"]
    assert inside["python_version"].startswith("3.13.")
    assert inside["build_seconds"] > 0
