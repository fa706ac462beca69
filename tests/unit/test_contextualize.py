from __future__ import annotations

import classad2
import pytest
import yaml

from bursting.contextualize import WorkerSpec, render_cloud_init, render_condor_config
from bursting.model import Flavor, Secret

TOKEN = "eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.secret-part.signature"


def spec(**changes: object) -> WorkerSpec:
    values: dict[str, object] = {
        "pool_id": "cern-batch",
        "instance_id": "bx-0042",
        "cloud": "private",
        "flavor": Flavor("m1.large", 8, 16384, 80),
        "collector": "cm.example.org:9618",
        "token": Secret(TOKEN),
        "admin_identity": "bursting@example.org",
    }
    values.update(changes)
    return WorkerSpec(**values)  # type: ignore[arg-type]


def config_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "use ")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_partitionable_slot_sized_to_flavor() -> None:
    values = config_values(render_condor_config(spec()))
    assert values["NUM_CPUS"] == "8"
    assert values["MEMORY"] == "16384"
    assert values["SLOT_TYPE_1_PARTITIONABLE"] == "True"
    assert values["SLOT_TYPE_1"] == "100%"
    assert values["COLLECTOR_HOST"] == "cm.example.org:9618"


def test_burst_tags_are_published_as_classad_strings() -> None:
    values = config_values(render_condor_config(spec()))
    assert classad2.ExprTree(values["BurstingInstance"]).eval() == "bx-0042"
    assert classad2.ExprTree(values["BurstingPool"]).eval() == "cern-batch"
    published = values["STARTD_ATTRS"].split()
    assert {"BurstingPool", "BurstingInstance", "BurstingCloud", "BurstingFlavor"} <= set(published)


def test_quotes_in_tags_cannot_break_the_config() -> None:
    values = config_values(render_condor_config(spec(extra_attrs={"Campaign": 'ttbar "13"'})))
    assert classad2.ExprTree(values["Campaign"]).eval() == 'ttbar "13"'


def test_invalid_attribute_name_is_refused() -> None:
    with pytest.raises(ValueError, match="extra_attrs"):
        spec(extra_attrs={"not valid": "x"})


def test_idle_shutdown_backstop_and_graceful_retirement() -> None:
    values = config_values(render_condor_config(spec(idle_shutdown_seconds=900)))
    assert values["STARTD_NOCLAIM_SHUTDOWN"] == "900"
    assert values["MASTER.DAEMON_SHUTDOWN"] == "STARTD_StartTime =?= 0"
    assert int(values["MAXJOBRETIREMENTTIME"]) >= 24 * 3600


def test_too_short_idle_shutdown_is_refused() -> None:
    with pytest.raises(ValueError, match="idle_shutdown_seconds"):
        spec(idle_shutdown_seconds=5)


def test_controller_may_drain_the_worker() -> None:
    values = config_values(render_condor_config(spec()))
    assert values["ALLOW_ADMINISTRATOR"].endswith("bursting@example.org")


def test_condor_config_never_contains_the_token() -> None:
    text = render_condor_config(spec())
    assert TOKEN not in text
    assert "SEC_TOKEN_SYSTEM_DIRECTORY = /etc/condor/tokens.d" in text


def test_cloud_init_writes_config_and_private_token() -> None:
    user_data = render_cloud_init(spec())
    assert user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(user_data)
    files = {entry["path"]: entry for entry in document["write_files"]}
    token = files["/etc/condor/tokens.d/bursting-pool"]
    assert token["permissions"] == "0600"
    assert token["content"].strip() == TOKEN
    config = files["/etc/condor/config.d/50-bursting-worker.conf"]
    assert config["content"] == render_condor_config(spec())
    assert ["systemctl", "enable", "--now", "condor"] in document["runcmd"]


def test_secret_never_shows_in_repr() -> None:
    assert TOKEN not in repr(spec())
    assert TOKEN not in str(Secret(TOKEN))
