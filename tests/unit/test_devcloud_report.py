"""The devcloud section a failed integration test carries: the errors it picks from the logs,
the secrets it masks, and that it never raises over the failure it comes with."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from tests.devcloud_report import devcloud_report, errors

NOVA_ERROR = (
    "2026-12-03 18:32:49.001 803409 ERROR nova.compute.manager [req-1] Instance failed to spawn"
)


def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    (root / "nova").mkdir(parents=True)
    (root / "nova" / "gunicorn.log").write_text(
        "2026-12-03 18:32:48.921 803412 INFO nova.api.openstack.requestlog GET /v2.1 status: 200\n"
        "2026-12-03 18:26:05.819 803409 ERROR stevedore.extension Could not load "
        "'oslo_cache.memcache_pool': No module named 'memcache'\n"
        "2026-12-03 18:31:24.112 803409 ERROR nova.api.validation Schema failed to validate\n"
        f"{NOVA_ERROR}\n"
    )
    (root / "keystone.stdout").write_text("[2026-12-03 18:24:25 +0000] [9] [ERROR] Worker died\n")
    return root


def test_errors_keep_error_lines_and_drop_the_known_noise(tmp_path: Path) -> None:
    text = errors(logs(tmp_path), limit=10, recent_seconds=900)
    assert f"nova/gunicorn.log: {NOVA_ERROR}" in text
    assert "keystone.stdout: [2026-12-03 18:24:25 +0000] [9] [ERROR] Worker died" in text
    assert "memcache" not in text and "Schema failed" not in text and "INFO" not in text


def test_errors_skip_logs_not_written_lately_and_keep_the_last_lines(tmp_path: Path) -> None:
    root = logs(tmp_path)
    old = time.time() - 3600
    os.utime(root / "keystone.stdout", (old, old))
    text = errors(root, limit=1, recent_seconds=900)
    assert text == f"nova/gunicorn.log: {NOVA_ERROR}"
    assert errors(root, limit=5, recent_seconds=1) in ("(none)", text)


class BrokenCloud:
    """A devcloud whose state cannot be read: every part of the report says why instead."""

    def __init__(self, tmp_path: Path) -> None:
        self.paths = SimpleNamespace(logs=tmp_path / "missing")
        self.clouds_yaml = tmp_path / "clouds.yaml"
        self.ec2_file = tmp_path / "ec2.json"
        self.clouds_yaml.write_text(
            yaml.safe_dump(
                {"clouds": {"devcloud-admin": {"auth": {"password": "s3cret-admin-pw"}}}}
            )
        )
        self.ec2_file.write_text(json.dumps({"secret": "ec2-s3cret-key"}))

    def status(self) -> dict[str, Any]:
        raise RuntimeError("state file unreadable; admin password s3cret-admin-pw")


def test_the_report_never_raises_and_masks_secrets(tmp_path: Path) -> None:
    text = devcloud_report(BrokenCloud(tmp_path))
    assert "-- services not answering: unavailable (RuntimeError" in text
    assert "-- servers: unavailable (" in text
    assert "-- latest errors in the logs" in text
    assert "s3cret-admin-pw" not in text and "********" in text
