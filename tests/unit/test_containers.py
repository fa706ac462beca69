"""How a container node is booted: only its user-data's HTCondor files, sized to its flavor."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from bursting.contextualize import TOKEN_FILE_NAME, render_condor_config
from bursting.devpool.containers import (
    PLATFORM_CONFIG,
    Boot,
    ContainerNodes,
    container_name,
    run_arguments,
    seed_files,
    user_data_files,
)
from bursting.errors import DevPoolError
from bursting.model import Flavor, Secret, WorkerSpec

REPO = Path(__file__).resolve().parents[2]
TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret-part.signature"


def spec(cpus: int = 2, memory_mb: int = 3072) -> WorkerSpec:
    return WorkerSpec(
        pool_id="p",
        instance_id="p-abc123",
        cloud="private",
        flavor=Flavor("m.2c", cpus, memory_mb),
        collector="127.0.0.1:9618",
        token=Secret(TOKEN),
        extra_attrs={"HasBurstingPayload": True},
    )


def test_seed_is_the_user_data_condor_files_and_the_platform_layer() -> None:
    files = seed_files(spec())
    token_path = f"/etc/condor/tokens.d/{TOKEN_FILE_NAME}"
    assert set(files) == {
        "/etc/condor/config.d/50-bursting-worker.conf",
        token_path,
        PLATFORM_CONFIG,
    }
    # Exactly what cloud-init would write, the token private to root.
    assert files["/etc/condor/config.d/50-bursting-worker.conf"][0] == render_condor_config(spec())
    assert files[token_path] == (TOKEN + "\n", 0o600)
    platform = files[PLATFORM_CONFIG][0]
    assert "USE_SHARED_PORT = False" in platform and "NETWORK_INTERFACE = 127.0.0.1" in platform


def test_run_arguments_size_the_container_and_mount_only_the_seed(tmp_path: Path) -> None:
    args = run_arguments(
        Boot.of("p-abc123", spec(cpus=2, memory_mb=3072)), "localhost/img:k", tmp_path
    )
    assert args[0] == "run" and args[-1] == "localhost/img:k"
    assert args[args.index("--cpus") + 1] == "2"
    assert args[args.index("--memory") + 1] == "3072m"
    assert args[args.index("--memory-swap") + 1] == "3072m"  # no swap beyond the flavor
    assert args[args.index("--runtime") + 1] == "runc"
    assert args[args.index("--name") + 1] == container_name("p-abc123")
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "--volume"]
    assert len(volumes) == 3
    for volume in volumes:
        source, inner, mode = volume.split(":")
        assert Path(source).is_relative_to(tmp_path) and inner.startswith("/etc/condor/")
        assert mode == "ro"
    joined = " ".join(args)
    for private in (str(REPO), sys.prefix, sys.base_prefix, "/var/tmp/bursting"):
        assert private not in joined
    assert TOKEN not in joined, "the token is a file in the seed, never an argument"


def test_seed_files_are_private(tmp_path: Path) -> None:
    nodes = ContainerNodes(lambda: True, image=lambda: "img", seeds=tmp_path)
    seed = nodes._write_seed("p-abc123", seed_files(spec()))
    assert stat.S_IMODE(seed.stat().st_mode) == 0o700
    token = seed / "etc/condor/tokens.d" / TOKEN_FILE_NAME
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text().strip() == TOKEN


def test_a_node_needs_a_spec_matching_its_size(tmp_path: Path) -> None:
    nodes = ContainerNodes(lambda: True, image=lambda: "img", seeds=tmp_path)
    with pytest.raises(DevPoolError, match="worker spec"):
        nodes.add_node(2, 3072, name="n1")
    with pytest.raises(DevPoolError, match="size differs"):
        nodes.add_node(4, 3072, name="n1", spec=spec())


def test_missing_podman_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    nodes = ContainerNodes(lambda: True, image=lambda: "img", seeds=tmp_path)
    with pytest.raises(DevPoolError, match="podman is not installed"):
        nodes.node_pids("n1")
    assert os.environ["PATH"] == str(tmp_path)


def test_the_drain_key_travels_only_when_configured_and_private() -> None:
    from dataclasses import replace

    from bursting.contextualize import ADMIN_KEY_NAME

    path = f"/etc/condor/passwords.d/{ADMIN_KEY_NAME}"
    assert path not in seed_files(spec())
    files = seed_files(replace(spec(), admin_key=Secret("k" * 64)))
    assert files[path] == ("k" * 64 + "\n", 0o600)
    assert "k" * 64 not in render_condor_config(replace(spec(), admin_key=Secret("k" * 64)))


def test_user_data_that_is_not_cloud_config_is_refused_clearly() -> None:
    with pytest.raises(DevPoolError, match="not a #cloud-config"):
        user_data_files("#!/bin/sh\necho hi\n")
    with pytest.raises(DevPoolError, match="invalid YAML"):
        user_data_files("#cloud-config\nwrite_files: [unclosed\n")
    with pytest.raises(DevPoolError, match="write_files must be a list"):
        user_data_files("#cloud-config\nwrite_files: 3\n")


def test_only_htcondor_files_of_the_user_data_are_carried() -> None:
    files = user_data_files(
        "#cloud-config\nwrite_files:\n"
        "- {path: /etc/condor/config.d/50-x.conf, content: 'A = 1', permissions: '0640'}\n"
        "- {path: /etc/systemd/system/x.conf, content: '[Service]'}\n"
    )
    assert files["/etc/condor/config.d/50-x.conf"] == ("A = 1", 0o640)
    assert not any(path.startswith("/etc/systemd") for path in files)
    assert PLATFORM_CONFIG in files
