"""The README's dashboard picture from a real demo run: Debian's `prometheus` on 127.0.0.1 scrapes
the demo's controller (metrics.listen in deploy/demo.yaml) every 5 seconds and evaluates
deploy/prometheus/rules.yml while `bursting demo` runs its three campaigns; then
docs/plot_burst.py draws queue demand against instances per cloud from that Prometheus.

    .venv/bin/python docs/demo_dashboard.py [--out docs/dashboard.png] [-- demo options]

Prometheus keeps its data in a temporary folder and is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from bursting.config import load_config

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS))
from plot_burst import draw  # noqa: E402  (a sibling script, not a package)

# Every 5 s, and as long to answer: the demo keeps both cores busy, a scrape that times out marks
# every series stale, and the picture would show gaps where nothing changed.
SCRAPE = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_prometheus(folder: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus not found: apt-get install prometheus (make system-deps)")
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE:g}s",
                    "scrape_timeout": f"{SCRAPE:g}s",
                    "evaluation_interval": f"{SCRAPE:g}s",
                },
                "rule_files": [str(REPO / "deploy" / "prometheus" / "rules.yml")],
                "scrape_configs": [
                    {"job_name": "bursting", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"prometheus exited: see {folder / 'prometheus.log'}") from None
            time.sleep(0.5)
    process.kill()
    raise SystemExit("prometheus did not become ready in 60s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS / "dashboard.png")
    parser.add_argument("--config", type=Path, default=REPO / "deploy" / "demo.yaml")
    parser.add_argument("demo_args", nargs="*", help="passed to `bursting demo` after --")
    args = parser.parse_args()
    target = load_config(args.config).metrics.listen
    bursting = Path(sys.executable).with_name("bursting")
    with tempfile.TemporaryDirectory(prefix="bursting-demo-prometheus-") as folder:
        prometheus, url = start_prometheus(Path(folder), target)
        try:
            start = time.time()
            demo = subprocess.run(
                [str(bursting), "demo", "--config", str(args.config), *args.demo_args],
                check=False,
            )
            end = time.time() + 2 * SCRAPE
            time.sleep(2 * SCRAPE)  # the last scrape after the controller's final cycle
            if demo.returncode != 0:
                raise SystemExit(f"the demo failed (exit {demo.returncode}); no picture drawn")
            print(draw(url, start, end, 2.0, args.out))
        finally:
            stop(prometheus)


if __name__ == "__main__":
    main()
