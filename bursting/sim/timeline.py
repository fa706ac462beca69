"""The PNG timeline of a simulated run: queue demand against capacity by cloud, and the
cumulative cost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bursting.sim.engine import SimRun


def draw_timeline(run: SimRun, path: Path, title: str = "") -> Path:
    """Two panels sharing the time axis; written to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = run.samples
    times = [datetime.fromtimestamp(s.time, UTC) for s in samples]
    clouds = list(run.clouds)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    stacks = [[s.capacity.get(name, 0) for s in samples] for name in clouds]
    if clouds:
        top.stackplot(
            times,
            *stacks,
            labels=[f"capacity in the pool: {c}" for c in clouds],
            step="post",
            alpha=0.75,
        )
    demand = [s.idle_cores + s.running_cores for s in samples]
    top.step(
        times, demand, where="post", color="black", linewidth=0.5, label="demand (queued cores)"
    )
    top.set_ylabel("cores")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or f"bursting simulate: {Path(run.trace.source).name}")
    currency = run.config.policy.spend.currency
    bottom.plot(times, [s.cost for s in samples], color="tab:green")
    bottom.set_ylabel(f"cost ({currency})")
    bottom.set_xlabel("simulated time (UTC)")
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
