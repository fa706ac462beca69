"""Queue demand vs capacity over the last hour: samples of the pool, drawn as an inline SVG on
the server (no script, nothing fetched). Pure apart from the lock around the samples."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from html import escape

from bursting.model import PoolSnapshot

WINDOW_SECONDS = 3600.0
MIN_SPAN_SECONDS = 300.0
WIDTH, HEIGHT, PAD = 640, 180, 32
SERIES = (  # (field, label, colour)
    ("demand", "demand: idle + running jobs", "#d9534f"),
    ("capacity", "capacity: all workers", "#2a7ab9"),
    ("busy", "busy: running jobs", "#5cb85c"),
)


@dataclass(frozen=True)
class Sample:
    at: float
    demand: int
    capacity: int
    busy: int


def sample(snapshot: PoolSnapshot) -> Sample:
    """Cores asked for by idle and running jobs vs cores the pool's workers have."""
    idle = sum(row.idle * row.shape.cpus for row in snapshot.queue)
    running = sum(row.running * row.shape.cpus for row in snapshot.queue)
    capacity = sum(worker.total_cpus for worker in snapshot.workers)
    busy = sum(worker.total_cpus - worker.free_cpus for worker in snapshot.workers)
    return Sample(snapshot.taken_at, idle + running, capacity, busy)


class History:
    """The samples of the last hour, oldest first; one per distinct snapshot time."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()

    def add(self, point: Sample) -> None:
        with self._lock:
            if self._samples and point.at <= self._samples[-1].at:
                return
            self._samples.append(point)
            while self._samples and self._samples[0].at < point.at - self.window:
                self._samples.popleft()

    def since(self, now: float) -> list[Sample]:
        with self._lock:
            return [s for s in self._samples if s.at >= now - self.window]


def _path(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


def span_of(samples: list[Sample], now: float, window: float = WINDOW_SECONDS) -> float:
    """The time the chart spans: the last hour, or less while fewer samples exist (at least
    five minutes), so a page opened a minute ago does not squeeze them into the right edge."""
    if not samples:
        return window
    return min(window, max(MIN_SPAN_SECONDS, now - samples[0].at))


def chart_svg(samples: list[Sample], now: float, window: float = WINDOW_SECONDS) -> str:
    """An SVG line chart of the samples over the span before `now`, each series a step line."""
    top = max((max(s.demand, s.capacity, s.busy) for s in samples), default=0)
    top = max(top, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    span = span_of(samples, now, window)

    def x(at: float) -> float:
        return PAD + inner_w * min(1.0, max(0.0, (at - (now - span)) / span))

    def y(value: float) -> float:
        return PAD + inner_h * (1 - value / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="queue demand vs capacity, last hour" data-samples="{len(samples)}">',
        f'<rect x="{PAD}" y="{PAD}" width="{inner_w}" height="{inner_h}" class="frame"/>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" class="tick" text-anchor="end">{top}</text>',
        f'<text x="{PAD - 4}" y="{PAD + inner_h}" class="tick" text-anchor="end">0</text>',
        f'<text x="{PAD + 4}" y="{PAD + 12}" class="tick">cores</text>',
        f'<text x="{PAD}" y="{HEIGHT - 8}" class="tick">-{span / 60:.0f} min</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" class="tick" text-anchor="end">now</text>',
    ]
    for name, label, colour in SERIES:
        points: list[tuple[float, float]] = []
        for s in samples:
            value = float(getattr(s, name))
            if points:
                points.append((x(s.at), points[-1][1]))
            points.append((x(s.at), y(value)))
        if points:
            points.append((x(now), points[-1][1]))
            parts.append(
                f'<path d="{_path(points)}" stroke="{colour}" class="series" '
                f'data-series="{name}"><title>{escape(label)}</title></path>'
            )
    for i, (_, label, colour) in enumerate(SERIES):
        lx = PAD + i * (inner_w / len(SERIES))
        parts.append(f'<rect x="{lx:.0f}" y="8" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14:.0f}" y="17" class="legend">{escape(label)}</text>')
    if not samples:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">'
            "no pool samples yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
