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

# Absent series mean zero here (no idle job, no instance), so each query falls back to zeros.
QUEUE = {
    "idle jobs": 'sum(bursting_jobs{state="idle"}) or vector(0)',
    "running jobs": 'sum(bursting_jobs{state="running"}) or vector(0)',
    "idle demand (cores)": "sum(bursting_idle_demand_cores) or vector(0)",
}
INSTANCES = (
    "sum by (cloud) (bursting_instances) or sum by (cloud) (bursting_cloud_max_instances) * 0"
)
IN_POOL = (
    'sum by (cloud) (bursting_instances{state=~"running|draining"})'
    " or sum by (cloud) (bursting_cloud_max_instances) * 0"
)


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


def draw(url: str, start: float, end: float, step: float, out: Path) -> Path:
    queue = {name: fetch(url, expr, start, end, step)[""] for name, expr in QUEUE.items()}
    clouds = fetch(url, INSTANCES, start, end, step, label="cloud")
    in_pool = fetch(url, IN_POOL, start, end, step, label="cloud")
    if not clouds:
        raise RuntimeError("no bursting_instances or bursting_cloud_max_instances in that range")

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6), height_ratios=(1, 1))
    for name, points in queue.items():
        style = "--" if "cores" in name else "-"
        top.plot([t - start for t, _ in points], [v for _, v in points], style, label=name)
    top.set_ylabel("queue")
    top.legend(loc="upper right", frameon=False)
    top.set_title("A burst as Prometheus saw it: queue demand vs instances per cloud")

    names = sorted(clouds)
    times = sorted({t for points in clouds.values() for t, _ in points})
    stacks = [dict(clouds[name]) for name in names]
    bottom.stackplot(
        [t - start for t in times],
        [[stack.get(t, 0.0) for t in times] for stack in stacks],
        labels=[f"{name}: all live instances" for name in names],
        alpha=0.45,
        step="post",
    )
    for name in names:
        points = in_pool.get(name, [])
        bottom.step(
            [t - start for t, _ in points],
            [v for _, v in points],
            where="post",
            label=f"{name}: in the pool",
        )
    peak = max((sum(stack.get(t, 0.0) for stack in stacks) for t in times), default=1.0)
    bottom.set_ylim(0, math.ceil(max(1.0, peak)) + 0.5)
    bottom.set_ylabel("instances")
    bottom.set_xlabel(f"seconds since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(start))}")
    bottom.legend(loc="upper right", frameon=False, fontsize="small")
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
