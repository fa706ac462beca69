"""The chart's image: the controller's Containerfile and its key, without building anything."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

import bursting
from bursting.errors import ImageError
from bursting.image import controller_key as ck
from bursting.image.key import CONTAINERFILE as WORKER_CONTAINERFILE

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm/bursting"
REQUIRES = [
    "apache-airflow==3.3.*",
    "htcondor>=25",
    "openstacksdk>=4",
    "kubernetes>=30",
    "prometheus-client>=0.20",
    "pythia8mc==8.317.2",
    "pydantic>=2.6",
    "tenacity>=8",
    "pyyaml>=6",
    "typer>=0.12",
    "rich>=13",
    'pytest>=8; extra == "test"',
]
HOST = {"htcondor": "25.14.1", "openstacksdk": "4.22.0", "kubernetes": "29.0.0", "pyyaml": "6.0.3"}


def instructions(path: Path) -> list[str]:
    """The Containerfile's instructions, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_first_instructions_are_the_worker_images_so_buildah_shares_its_layers() -> None:
    worker = instructions(REPO / WORKER_CONTAINERFILE)
    controller = instructions(REPO / ck.CONTAINERFILE)
    assert worker[:3] == controller[:3]
    assert worker[0] == "FROM scratch" and worker[1] == "ADD rootfs.tar /"


def test_the_image_runs_as_the_charts_non_root_user() -> None:
    lines = instructions(REPO / ck.CONTAINERFILE)
    assert f"USER {ck.UID}:{ck.UID}" in lines
    assert lines[-1] == 'CMD ["run", "--config", "/etc/bursting/config.yaml"]'
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == ck.REPOSITORY
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == bursting.__version__
    deployment = (CHART / "templates/deployment.yaml").read_text()
    assert f"runAsUser: {ck.UID}" in deployment and f"fsGroup: {ck.UID}" in deployment


def test_requirements_are_the_controllers_pinned_to_the_host_where_they_fit() -> None:
    found = {r.name: r for r in ck.controller_requirements(REQUIRES, HOST.get)}
    assert list(found) == [
        "htcondor", "openstacksdk", "kubernetes", "prometheus-client", "pydantic", "tenacity",
        "pyyaml", "typer", "rich", "packaging",
    ]  # fmt: skip
    assert found["htcondor"].pinned == "htcondor==25.14.1"
    assert found["kubernetes"].pinned is None  # 29 is below the declared >=30
    assert found["kubernetes"].candidates() == ("kubernetes>=30",)
    assert found["typer"].pinned is None  # not installed here: as declared
    assert "apache-airflow" not in found and "pythia8mc" not in found


def test_a_requirement_the_controller_imports_must_be_declared() -> None:
    with pytest.raises(ImageError, match="the controller imports kubernetes but bursting"):
        ck.controller_requirements([r for r in REQUIRES if "kubernetes" not in r], HOST.get)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    shutil.copytree(
        REPO / "bursting", root / "bursting", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "deploy/controller").mkdir(parents=True)
    shutil.copy2(REPO / ck.CONTAINERFILE, root / ck.CONTAINERFILE)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def key_of(root: Path) -> str:
    requirements = ck.controller_requirements(REQUIRES, HOST.get)
    return ck.controller_key(ck.read_controller_inputs(root, requirements, "0.1.0"))


def test_any_source_change_rebuilds_the_controller_image(checkout: Path) -> None:
    before = key_of(checkout)
    assert key_of(checkout) == before
    (checkout / "bursting/__pycache__").mkdir(exist_ok=True)
    (checkout / "bursting/__pycache__/x.pyc").write_bytes(b"cache")
    assert key_of(checkout) == before  # caches do not count
    controller = checkout / "bursting/controller.py"
    controller.write_text(controller.read_text() + "\n# a controller change\n")
    after = key_of(checkout)
    assert after != before
    containerfile = checkout / ck.CONTAINERFILE
    containerfile.write_text(containerfile.read_text() + "\nLABEL x=y\n")
    assert key_of(checkout) not in {before, after}
    assert ck.controller_reference(after) == f"localhost/bursting-controller:{after[:12]}"


def test_a_clone_without_the_containerfile_says_what_is_missing(checkout: Path) -> None:
    (checkout / ck.CONTAINERFILE).unlink()
    with pytest.raises(ImageError, match="is missing: the controller image is built from"):
        key_of(checkout)


def test_the_dependency_download_is_named_by_its_requirements() -> None:
    one = ck.requirements_digest(["a==1", "b==2"])
    assert one == ck.requirements_digest(["b==2", "a==1"])
    assert one != ck.requirements_digest(["a==1", "b==3"])
    assert len(one) == 12
