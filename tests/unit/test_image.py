"""The worker image's key, manifest decisions and errors, without building anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bursting.errors import ImageError
from bursting.image import build, key, manifest, tools
from bursting.image.key import KeyInputs, PayloadRequirement

REPO = Path(__file__).resolve().parents[2]
REQUIRES = [
    "apache-airflow==3.3.*",
    "pythia8mc==8.317.2",
    "uproot>=5",
    "awkward>=2",
    "numpy>=1.24",
    "hist>=2.7",
    'pytest>=8; extra == "test"',
]
HOST = {"pythia8mc": "8.317.2", "numpy": "2.4.6", "uproot": "5.7.7", "awkward": "2.14.0"}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the key reads, plus controller code that must not count."""
    root = tmp_path / "clone"
    for rel in ("deploy/worker", "bursting/physics"):
        shutil.copytree(REPO / rel, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("bursting/__init__.py", "bursting/workload.py", "bursting/controller.py"):
        shutil.copy2(REPO / rel, root / rel)
    return root


def requirements(host: dict[str, str] = HOST) -> tuple[PayloadRequirement, ...]:
    return key.payload_requirements(REQUIRES, host.get)


def key_of(root: Path, host: dict[str, str] = HOST, version: str = "0.1.0") -> str:
    return key.image_key(key.read_inputs(root, requirements(host), version))


# ----- the key -----
def test_key_is_stable_for_the_same_checkout(checkout: Path) -> None:
    assert key_of(checkout) == key_of(checkout)
    assert len(key_of(checkout)) == 64


def test_controller_code_does_not_change_the_key(checkout: Path) -> None:
    before = key_of(checkout)
    controller = checkout / "bursting/controller.py"
    controller.write_text(controller.read_text() + "\n# a controller change\n")
    (checkout / "bursting/physics/__pycache__").mkdir()
    (checkout / "bursting/physics/__pycache__/generate.cpython-311.pyc").write_bytes(b"\0")
    assert key_of(checkout) == before


@pytest.mark.parametrize(
    "changed",
    [
        "bursting/physics/generate.py",
        "bursting/physics/reference.json",
        "bursting/workload.py",
        "bursting/__init__.py",
        "deploy/worker/Containerfile",
        "deploy/worker/10-bursting-image.conf",
    ],
)
def test_payload_sources_and_image_files_change_the_key(checkout: Path, changed: str) -> None:
    before = key_of(checkout)
    path = checkout / changed
    path.write_text(path.read_text() + "\n")
    assert key_of(checkout) != before


def test_a_new_payload_file_changes_the_key(checkout: Path) -> None:
    before = key_of(checkout)
    (checkout / "bursting/physics/extra.py").write_text("X = 1\n")
    assert key_of(checkout) != before


def test_requirements_and_version_change_the_key(checkout: Path) -> None:
    before = key_of(checkout)
    assert key_of(checkout, {**HOST, "numpy": "2.4.7"}) != before
    assert key_of(checkout, version="0.2.0") != before


def test_key_covers_every_input() -> None:
    base = KeyInputs("FROM scratch", "A = 1", "trixie", "0.1.0", ("numpy==2",), "d" * 64)
    variants = [
        KeyInputs("FROM x", "A = 1", "trixie", "0.1.0", ("numpy==2",), "d" * 64),
        KeyInputs("FROM scratch", "A = 2", "trixie", "0.1.0", ("numpy==2",), "d" * 64),
        KeyInputs("FROM scratch", "A = 1", "forky", "0.1.0", ("numpy==2",), "d" * 64),
        KeyInputs("FROM scratch", "A = 1", "trixie", "0.1.1", ("numpy==2",), "d" * 64),
        KeyInputs("FROM scratch", "A = 1", "trixie", "0.1.0", ("numpy==3",), "d" * 64),
        KeyInputs("FROM scratch", "A = 1", "trixie", "0.1.0", ("numpy==2",), "e" * 64),
    ]
    keys = {key.image_key(v) for v in variants} | {key.image_key(base)}
    assert len(keys) == len(variants) + 1


def test_a_checkout_without_the_containerfile_is_refused(checkout: Path) -> None:
    (checkout / "deploy/worker/Containerfile").unlink()
    with pytest.raises(ImageError, match="Containerfile is missing"):
        key_of(checkout)


# ----- payload requirements -----
def test_payload_requirements_are_pinned_to_the_host_and_filtered_to_the_payload() -> None:
    found = requirements()
    assert [r.name for r in found] == ["pythia8mc", "numpy", "uproot", "awkward"]
    numpy = found[1]
    assert numpy.as_written == "numpy>=1.24"
    assert numpy.pinned == "numpy==2.4.6"
    assert numpy.candidates() == ("numpy==2.4.6", "numpy>=1.24")


def test_a_host_version_outside_the_range_or_absent_falls_back_to_the_requirement() -> None:
    found = requirements({"pythia8mc": "8.317.2", "numpy": "1.20.0", "uproot": "5.7.7"})
    by_name = {r.name: r for r in found}
    assert by_name["numpy"].pinned is None
    assert by_name["numpy"].candidates() == ("numpy>=1.24",)
    assert by_name["awkward"].candidates() == ("awkward>=2",)


def test_a_payload_import_the_project_does_not_require_is_an_error() -> None:
    with pytest.raises(ImageError, match=r"uproot.*pyproject\.toml"):
        key.payload_requirements([r for r in REQUIRES if not r.startswith("uproot")], HOST.get)


def test_the_installed_distribution_gives_the_payload_requirements() -> None:
    co = build.checkout()
    assert [r.name for r in co.requirements] == list(key.PAYLOAD_DISTRIBUTIONS)
    assert co.requirements[0].pinned == "pythia8mc==8.317.2"


# ----- manifest decisions -----
@pytest.mark.parametrize(
    ("recorded", "present", "state"),
    [
        (None, None, "missing"),
        (None, "sha256:x", "missing"),
        ({"key": "other", "image_id": "x"}, "x", "stale"),
        ({"key": "other", "image_id": "x"}, None, "stale"),
        ({"key": "k", "image_id": "x"}, None, "missing"),
        ({"key": "k", "image_id": "x"}, "y", "stale"),
        ({"key": "k", "image_id": "x"}, "x", "current"),
    ],
)
def test_decide_state(recorded: dict[str, object] | None, present: str | None, state: str) -> None:
    assert manifest.decide_state(recorded, "k", present) == state


def test_reference_and_manifest_path_use_the_key_prefix(tmp_path: Path) -> None:
    assert manifest.reference_for("0123456789abcdef") == "localhost/bursting-worker:0123456789ab"
    assert manifest.manifest_path(tmp_path, "0123456789abcdef").name == "manifest-0123456789ab.json"


def test_manifest_round_trip_and_unreadable_manifest(tmp_path: Path) -> None:
    path = tmp_path / "manifest-a.json"
    manifest.write_manifest(path, {"key": "a", "built_at": "2026-01-01T00:00:00+00:00"})
    assert manifest.read_manifest(path) == {"key": "a", "built_at": "2026-01-01T00:00:00+00:00"}
    assert not list(tmp_path.glob("*.partial"))
    path.write_text("{not json")
    assert manifest.read_manifest(path) is None
    assert manifest.read_manifest(tmp_path / "absent.json") is None


def test_latest_manifest_is_the_newest_build(tmp_path: Path) -> None:
    manifest.write_manifest(tmp_path / "manifest-a.json", {"key": "a", "built_at": "2026-01-02"})
    manifest.write_manifest(tmp_path / "manifest-b.json", {"key": "b", "built_at": "2026-01-01"})
    latest = manifest.latest_manifest(tmp_path)
    assert latest is not None and latest["key"] == "a"
    assert manifest.latest_manifest(tmp_path / "none") is None


def test_parse_description_reads_what_the_image_printed() -> None:
    text = (
        "$CondorVersion: 23.9.6 2026-07-12 PackageID: 23.9.6+dfsg-2.1+b10 $\n"
        '$CondorPlatform: X86_64-Debian_13 $\n---\n3.13.5\n---\n"0.1.0"\n---\n'
        "numpy==2.4.6\npythia8mc==8.317.2\n"
    )
    described = manifest.parse_description(text)
    assert described == {
        "htcondor_version": "23.9.6",
        "python_version": "3.13.5",
        "advertised_payload_version": "0.1.0",
        "pip_freeze": ["numpy==2.4.6", "pythia8mc==8.317.2"],
    }
    assert manifest.frozen_version(described["pip_freeze"], "Pythia8MC") == "8.317.2"
    assert manifest.frozen_version(described["pip_freeze"], "hist") is None
    with pytest.raises(ValueError, match="4 sections"):
        manifest.parse_description("3.13.5\n")


# ----- errors and the fast paths, with a cache of our own -----
@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BURSTING_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "worker-image"


@pytest.fixture
def path_without_buildah(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with the usual tools but none of buildah, podman, runc."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("sh", "tar", "debootstrap"):
        found = shutil.which(command)
        if found:
            (bin_dir / command).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_missing_packages_names_the_debian_packages() -> None:
    present = {"tar", "debootstrap"}
    assert tools.missing_packages(which=lambda c: f"/usr/bin/{c}" if c in present else None) == [
        "buildah",
        "podman",
        "runc",
    ]
    assert tools.missing_packages(which=lambda c: f"/usr/bin/{c}") == []


@pytest.mark.usefixtures("cache", "path_without_buildah")
def test_ensure_image_without_buildah_says_what_to_install() -> None:
    with pytest.raises(ImageError, match=r"apt-get install -y buildah podman runc$"):
        build.ensure_image()


@pytest.mark.usefixtures("cache")
def test_cli_build_without_buildah_fails_with_one_line(path_without_buildah: Path) -> None:
    env = {**os.environ, "PATH": str(path_without_buildah)}
    done = subprocess.run(
        [sys.executable, "-m", "bursting.cli", "image", "build"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "apt-get install -y buildah podman runc" in done.stderr


def test_a_failing_command_becomes_one_line_pointing_at_the_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    with pytest.raises(ImageError) as caught:
        tools.run(["sh", "-c", "echo step; echo boom >&2; exit 3"], timeout=30, log_file=log)
    assert str(caught.value) == f"sh -c failed (exit 3): boom; full log: {log}"
    assert "step" in log.read_text()
    with pytest.raises(ImageError, match="apt-get install -y buildah"):
        tools.run(["/nonexistent/buildah", "bud"], timeout=30)


@pytest.mark.usefixtures("path_without_buildah")
def test_status_and_current_image_follow_the_manifests(cache: Path) -> None:
    assert build.image_status()["state"] == "missing"
    assert build.current_image() is None
    cache.mkdir(parents=True)
    other = {"key": "0" * 64, "built_at": "x"}
    manifest.write_manifest(cache / "manifest-000000000000.json", other)
    status = build.image_status()
    assert status["state"] == "stale"
    assert status["built_at"] == "x"
    co = build.checkout()
    assert status["key"] == co.key
    assert status["reference"] == manifest.reference_for(co.key)
    # Recorded for this checkout, but podman (absent from PATH here) does not hold it.
    manifest.write_manifest(manifest.manifest_path(cache, co.key), {"key": co.key, "image_id": "x"})
    assert build.image_status()["state"] == "missing"
    assert build.current_image() is None


@pytest.mark.usefixtures("cache", "path_without_buildah")
def test_cli_status_json_reports_missing() -> None:
    from typer.testing import CliRunner

    from bursting.cli import app

    result = CliRunner().invoke(app, ["image", "status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["state"] == "missing"
    assert report["manifest"] == {}
