"""Absence from the pool is evidence only once the collector and the schedd have run long enough
for every worker to advertise again."""

from __future__ import annotations

import pytest

from bursting.model import PoolSnapshot
from bursting.policy.absence import absence_doubt, absence_is_evidence, distrust_window

NOW = 50_000.0


def pool(
    collector_age: float | None, schedd_age: float | None, interval: float = 300.0
) -> PoolSnapshot:
    return PoolSnapshot(
        taken_at=NOW,
        demand=(),
        workers=(),
        collector_started_at=None if collector_age is None else NOW - collector_age,
        schedd_started_at=None if schedd_age is None else NOW - schedd_age,
        advertise_interval=interval,
    )


def test_window_is_two_intervals_and_a_margin() -> None:
    assert distrust_window(5) == 40.0
    assert distrust_window(300) == 630.0
    assert distrust_window(-1) == 30.0


def test_no_restart_information_trusts_absence() -> None:
    assert absence_is_evidence(pool(None, None), NOW)


@pytest.mark.parametrize(
    ("collector_age", "schedd_age", "interval", "trusted"),
    [
        (8, 86_400, 5, False),  # the case: 8 s after the collector came back
        (16, 86_400, 5, False),
        (39, 86_400, 5, False),
        (40, 86_400, 5, True),
        (86_400, 10, 5, False),  # a young schedd: "no job runs there" may be a lagging schedd
        (86_400, 86_400, 300, True),
        (600, 86_400, 300, False),  # default interval: 630 s of doubt
        (0, 0, 300, False),
        (-20, 86_400, 300, False),  # clock skew: a start "in the future" is young
    ],
)
def test_young_daemons_make_absence_meaningless(
    collector_age: float, schedd_age: float, interval: float, trusted: bool
) -> None:
    snapshot = pool(collector_age, schedd_age, interval)
    assert absence_is_evidence(snapshot, NOW) is trusted
    doubt = absence_doubt(snapshot, NOW)
    assert (doubt is None) is trusted
    if doubt is not None:
        assert ("collector" in doubt) is (collector_age < distrust_window(interval))
