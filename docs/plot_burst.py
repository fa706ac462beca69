"""Draw a burst from the Prometheus that scraped it: what the queue wanted against the instances
each cloud provided, over time (docs/dashboard.png in the README).

    python docs/plot_burst.py --prometheus http://127.0.0.1:9090 --start 1764000000 \
        --end 1764000300 --out docs/dashboard.png

Every line comes from `query_range` against that Prometheus, nothing is simulated; the README's
picture was drawn by tests/integration/test_prometheus.py from its real burst on the local clouds
(run it with BURSTING_DASHBOARD_PNG=docs/dashboard.png to draw it again).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt

Series = dict[str, list[tuple[float, float]]]  # legend -> [(unix time, value)]

# Queue gauges are exported (at 0 too) on every scrape; a failed scrape leaves a gap, not a 0.
QUEUE = {
    # As the recording rule bursting:runnable_idle_jobs, read from the same scrape, not a rule
    # evaluation later.
    "idle jobs some cloud can run": "(sum(bursting_idle_demand_jobs)"
    " - (sum(bursting_unschedulable_jobs) or sum(bursting_pool_up) * 0))"
    " or sum(bursting_pool_up) * 0",
    "idle jobs no cloud can run": "sum(bursting_unschedulable_jobs) or sum(bursting_pool_up) * 0",
    "running jobs": 'sum(bursting_jobs{state="running"})',
}
# A cloud without instances exports no bursting_instances series: its max_instances, times 0,
# stands for "none" (and is absent, like everything, when a scrape failed).
NONE = " or sum by (cloud) (bursting_cloud_max_instances) * 0"
INSTANCES = {
    "in the pool": 'sum by (cloud) (bursting_instances{state=~"running|draining"})' + NONE,
    "provisioning": 'sum by (cloud) (bursting_instances{state=~"requested|booting|joining"})'
    + NONE,
    "leaving": 'sum by (cloud) (bursting_instances{state=~"deleting|failed"})' + NONE,
}
SHADES = {"in the pool": 1.0, "provisioning": 0.55, "leaving": 0.25}


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    """The `result` of one /api/v1/query_range call; raises on anything but success."""
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{query}", timeout=30) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {expr!r}: {body.get('error')}")
    result: list[Any] = body["data"]["result"]
    return result


def fetch(url: str, expr: str, start: float, end: float, step: float, label: str = "") -> Series:
    out: Series = {}
    for series in query_range(url, expr, start, end, step):
        name = series["metric"].get(label, "") if label else ""
        out[name] = [(float(t), float(v)) for t, v in series["values"]]
    return out


def _gapped(points: list[tuple[float, float]], start: float, step: float) -> tuple[Any, Any]:
    """x (seconds from start) and y with NaN where Prometheus had no sample, so missing
    scrapes show as gaps instead of invented values."""
    if not points:
        return [], []
    by_step = {round((t - start) / step): v for t, v in points}
    slots = range(min(by_step), max(by_step) + 1)
    return [n * step for n in slots], [by_step.get(n, math.nan) for n in slots]


def draw(url: str, start: float, end: float, step: float, out: Path) -> Path:
    queue = {name: fetch(url, expr, start, end, step).get("", []) for name, expr in QUEUE.items()}
    layers = {name: fetch(url, expr, start, end, step, "cloud") for name, expr in INSTANCES.items()}
    clouds = sorted({cloud for by_cloud in layers.values() for cloud in by_cloud})
    if not clouds:
        raise RuntimeError("no bursting_instances or bursting_cloud_max_instances in that range")

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    for name, points in queue.items():
        top.plot(*_gapped(points, start, step), label=name, drawstyle="steps-post")
    top.set_ylabel("jobs")
    top.legend(loc="upper right", frameon=False, fontsize="small")
    top.set_title("A burst as Prometheus saw it: queue demand vs instances per cloud")

    slots = range(round((end - start) / step) + 1)
    stacks, labels, colors = [], [], []
    for n, cloud in enumerate(clouds):
        base = plt.get_cmap("tab10")(n)[:3]
        for layer, shade in SHADES.items():
            by_step = {round((t - start) / step): v for t, v in layers[layer].get(cloud, [])}
            stacks.append([by_step.get(i, math.nan) for i in slots])
            labels.append(f"{cloud}: {layer}")
            colors.append(tuple(shade * c + (1 - shade) for c in base))  # paler, opaque
    bottom.stackplot([i * step for i in slots], stacks, labels=labels, colors=colors, step="post")
    totals = [sum(v for v in column if not math.isnan(v)) for column in zip(*stacks, strict=True)]
    bottom.set_ylim(0, math.ceil(max(1.0, *totals)) + 0.5)
    bottom.set_ylabel("instances")
    bottom.set_xlabel(f"seconds since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(start))}")
    bottom.legend(loc="upper right", frameon=False, fontsize="small", ncols=len(clouds))
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        axis.set_xlim(0, end - start)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="base URL")
    parser.add_argument("--start", type=float, required=True, help="Unix time")
    parser.add_argument("--end", type=float, default=None, help="Unix time (default: now)")
    parser.add_argument("--step", type=float, default=2.0, help="seconds between points")
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    args = parser.parse_args()
    end = args.end if args.end is not None else time.time()
    print(draw(args.prometheus.rstrip("/"), args.start, end, args.step, args.out))


if __name__ == "__main__":
    main()
