"""The UI page's pure parts: the demand-vs-capacity chart and its samples, the controller
address, a run's campaign name, the Campaign tab's counts and its results folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bursting.model import (
    ClusterStatus,
    JobOutcome,
    JobShape,
    JobState,
    PoolSnapshot,
    QueueRow,
    Worker,
)
from bursting.ui.campaignview import campaign_facts, result_files
from bursting.ui.history import History, Sample, chart_svg, sample, span_of
from bursting.ui.poolview import age_text, pool_facts, quota_text
from bursting.ui.runs import campaign_name
from bursting.ui.settings import display_url, status_url

T = 1_800_000_000.0


def test_sample_counts_cores_of_jobs_and_workers() -> None:
    queue = (
        QueueRow("a", JobShape(2, 1024), idle=3, running=1, held=4),
        QueueRow("b", JobShape(1, 512), running=2),
    )
    workers = (
        Worker("w1", "w1", "i-1", "p", 4, 4096, 1, 1024, 2, False, 1),
        Worker("w2", "w2", None, None, 2, 2048, 2, 2048, 0, False, 1),
    )
    point = sample(PoolSnapshot(T, (), workers, queue))
    assert point == Sample(T, demand=3 * 2 + 2 + 2, capacity=6, busy=3)  # held jobs ask nothing


def test_history_keeps_one_hour_of_distinct_samples() -> None:
    history = History()
    for minute in range(0, 90, 10):
        history.add(Sample(T + 60 * minute, minute, 10, 5))
    history.add(Sample(T + 60 * 80, 999, 0, 0))  # the same snapshot read again: ignored
    now = T + 60 * 80
    assert [s.demand for s in history.since(now)] == [20, 30, 40, 50, 60, 70, 80]


def test_chart_draws_each_series_scaled_to_the_largest_value() -> None:
    samples = [Sample(T - 1800, 4, 8, 2), Sample(T - 600, 12, 8, 8)]
    svg = chart_svg(samples, T)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and 'data-samples="2"' in svg
    assert {m for m in re.findall(r'data-series="(\w+)"', svg)} == {"demand", "capacity", "busy"}
    assert ">12</text>" in svg  # the axis' top is the largest value
    demand = re.search(r'd="([^"]+)" stroke="#d9534f"', svg)
    assert demand is not None
    ys = [float(p.split(",")[1]) for p in demand.group(1).replace("M", "").split(" L")]
    assert min(ys) == pytest.approx(32.0)  # 12 of 12: the top of the plot area
    xs = [float(p.split(",")[0]) for p in demand.group(1).replace("M", "").split(" L")]
    assert xs[0] == pytest.approx(32) and xs[-1] == pytest.approx(608)  # first sample to now
    assert ">-30 min</text>" in svg


def test_chart_spans_the_last_hour_once_it_has_an_hour_of_samples() -> None:
    samples = [Sample(T - 5400, 1, 1, 1), Sample(T - 1800, 2, 2, 2)]
    svg = chart_svg(samples, T)
    assert ">-60 min</text>" in svg
    first = re.search(r'd="M([\d.]+),', svg)
    assert first is not None and float(first.group(1)) == pytest.approx(32)  # clipped at -60
    assert span_of([Sample(T - 10, 1, 1, 1)], T) == 300  # a young page: five minutes


def test_chart_without_samples_says_so() -> None:
    assert "no pool samples yet" in chart_svg([], T)


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:9100", "http://127.0.0.1:9100/status"),
        ("0.0.0.0:9100", "http://127.0.0.1:9100/status"),
        ("http://ctl.example:9100/", "http://ctl.example:9100/status"),
        ("https://ctl.example/bursting/status", "https://ctl.example/bursting/status"),
        ("[::1]:9100", "http://[::1]:9100/status"),
    ],
)
def test_status_url_from_the_controller_address(address: str, url: str) -> None:
    assert status_url(address) == url


def test_a_bad_controller_address_names_the_form_and_hides_credentials() -> None:
    with pytest.raises(ValueError, match="must be host:port or an http") as caught:
        status_url("ftp://user:pw@host:1")
    assert "pw" not in str(caught.value)
    assert display_url("http://user:pw@host:1/status") == "http://host:1/status"


def test_campaign_name_from_conf_then_from_the_work_folder() -> None:
    assert campaign_name({"campaign": "zmm-1"}, None) == "zmm-1"
    assert campaign_name({}, "/var/tmp/bursting/campaigns/zmm-2/manual__2026") == "zmm-2"
    assert campaign_name({"campaign": 'x" || true'}, None) is None  # never a constraint injection
    assert campaign_name(None, None) is None


def test_campaign_counts_done_held_failed_and_reasons() -> None:
    status = ClusterStatus(
        9,
        (
            JobOutcome("9.0", JobState.COMPLETED, exit_code=0),
            JobOutcome("9.1", JobState.COMPLETED, exit_code=3),
            JobOutcome("9.2", JobState.HELD, hold_reason="memory exceeded"),
            JobOutcome("9.3", JobState.REMOVED),
            JobOutcome("9.4", JobState.TRANSFERRING_OUTPUT),
            JobOutcome("9.5", JobState.IDLE),
        ),
    )
    facts = campaign_facts(status, None)
    assert (facts.total, facts.done, facts.running, facts.idle) == (6, 2, 1, 1)
    assert (facts.held, facts.failed, facts.percent_done) == (1, 2, 33)
    assert [(p.job_id, p.state, p.why) for p in facts.problems] == [
        ("9.1", "failed", "exit code 3"),
        ("9.2", "held", "memory exceeded"),
        ("9.3", "removed", "removed from the queue"),
    ]
    assert facts.cost is None and facts.clouds == ()


def test_result_files_lists_plots_downloads_and_http_objects_only(tmp_path: Path) -> None:
    assert result_files(None) is None and result_files(tmp_path / "gone") is None
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "merged.root").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    objects = [
        {"name": "c/r/a.png", "url": "https://store.example/c/r/a.png"},
        {"name": "evil", "url": "javascript:alert(1)"},
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"objects": objects}))
    results = result_files(tmp_path)
    assert results is not None
    assert results.plots == ("a.png", "b.png")
    assert results.downloads == ("merged.root", "summary.json")
    assert results.objects == (("c/r/a.png", "https://store.example/c/r/a.png"),)


def test_pool_facts_group_the_queue_by_shape_label() -> None:
    queue = (
        QueueRow("a", JobShape(1, 1024, 2048), idle=1),
        QueueRow("b", JobShape(1, 1024, 2048, requirements="x"), idle=2, held=1),
        QueueRow("a", JobShape(8, 1024), running=1),
    )
    facts = pool_facts(PoolSnapshot(T, (), (), queue))
    assert [(q.shape, q.idle, q.running, q.held) for q in facts.queue] == [
        ("1c-1024mb-2gb", 3, 0, 1),
        ("8c-1024mb-0gb", 0, 1, 0),
    ]


def test_small_texts() -> None:
    assert [age_text(s) for s in (None, 5, 600, 9000)] == ["-", "5s", "10m", "2.5h"]
    assert quota_text(None) == "-" and quota_text({"known": False}) == "unknown"
    assert quota_text({"instances": None, "cores": None, "memory_mb": None}) == "unlimited"
