from __future__ import annotations

from pathlib import Path

import pytest

from bursting.config import Config, load_config, parse_config
from bursting.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

LOCAL_CLOUD = {
    "name": "private",
    "type": "local",
    "flavors": [{"name": "m1.large", "cpus": 8, "memory_mb": 16384}],
}


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_empty_file_gives_the_personal_pool_defaults() -> None:
    config = parse_config(None)
    assert config.pool.collector == "127.0.0.1:9618"
    assert config.clouds == ()


def test_shipped_example_is_valid_and_complete() -> None:
    config = load_config(REPO / "deploy" / "config.example.yaml")
    assert {cloud.type for cloud in config.clouds} == {"local", "openstack", "kubernetes"}
    assert [cloud.name for cloud in config.clouds if cloud.enabled]
    assert config.policy.spend.max_per_hour is not None


def test_negative_max_instances_names_path_and_value() -> None:
    bad = dict(LOCAL_CLOUD, max_instances=-3)
    assert problems({"clouds": [LOCAL_CLOUD, dict(bad, name="public")]}) == [
        "clouds[1].max_instances: must be >= 0, got -3"
    ]


def test_unknown_key_is_an_error_not_ignored() -> None:
    assert problems({"pool": {"colector": "x:9618"}}) == [
        "pool.colector: is not a known key; remove it or check its spelling"
    ]


def test_unknown_key_inside_cloud_settings() -> None:
    cloud = {**LOCAL_CLOUD, "local": {"boot_delay_seconds": 1, "x": 1}}
    assert problems({"clouds": [cloud]}) == [
        "clouds[0].local.x: is not a known key; remove it or check its spelling"
    ]


def test_missing_required_keys() -> None:
    found = problems({"clouds": [{"name": "a", "type": "local", "flavors": [{"name": "f"}]}]})
    assert "clouds[0].flavors[0].cpus: is required; add it" in found
    assert "clouds[0].flavors[0].memory_mb: is required; add it" in found


def test_enabled_cloud_of_an_uninstalled_type_fails_the_check() -> None:
    (problem,) = problems({"clouds": [{**LOCAL_CLOUD, "type": "aws"}]})
    assert problem.startswith("clouds[0].type: no cloud provider of type 'aws' is installed")
    assert "installed: kubernetes, local, openstack" in problem and "enabled: false" in problem


def test_disabled_cloud_of_an_uninstalled_type_is_kept_but_never_built() -> None:
    cloud = {**LOCAL_CLOUD, "type": "aws", "enabled": False, "aws": {"region": "x"}}
    config = parse_config({"clouds": [cloud]})
    assert config.clouds[0].type == "aws" and not config.clouds[0].enabled


def test_missing_cloud_type() -> None:
    cloud = {k: v for k, v in LOCAL_CLOUD.items() if k != "type"}
    assert problems({"clouds": [cloud]}) == [
        "clouds[0].type: is required; one of the installed types: kubernetes, local, openstack"
    ]


def test_workers_token_comes_from_a_file_or_the_environment_never_inline() -> None:
    assert problems({"workers": {"token": {"file": "/x", "env": "T"}}}) == [
        "workers.token: give exactly one of file: PATH or env: VARIABLE"
    ]
    assert problems({"workers": {"token": "abc"}}) == [
        "workers.token: must be a mapping of keys, got str"
    ]
    found = problems({"workers": {"attributes": {"has cvmfs": True}}})
    assert found and found[0].startswith("workers.attributes:")


def test_provides_is_a_map_of_attribute_names() -> None:
    config = parse_config({"clouds": [{**LOCAL_CLOUD, "provides": {"HasCVMFS": True}}]})
    # A local cloud's workers boot from the worker image: they always have the payload too.
    assert config.clouds[0].provides == {"HasBurstingPayload": True, "HasCVMFS": True}
    (problem,) = problems({"clouds": [{**LOCAL_CLOUD, "provides": {"1bad": 1}}]})
    assert problem.startswith("clouds[0].provides:")


def test_wrong_types_are_named() -> None:
    found = problems({"policy": {"interval_seconds": "often", "backoff": {"initial_seconds": 0}}})
    assert "policy.interval_seconds: must be a number, got 'often'" in found
    assert "policy.backoff.initial_seconds: must be > 0, got 0" in found


def test_bad_cloud_name_says_how_to_fix() -> None:
    (problem,) = problems({"clouds": [{**LOCAL_CLOUD, "name": "Private Cloud"}]})
    assert problem.startswith("clouds[0].name: 'Private Cloud' is not a valid name; use 1-40")


def test_min_above_max_instances() -> None:
    (problem,) = problems({"clouds": [{**LOCAL_CLOUD, "min_instances": 5, "max_instances": 2}]})
    assert problem.startswith("clouds[0]: min_instances (5) exceeds max_instances (2)")


def test_duplicate_cloud_and_flavor_names() -> None:
    flavor = LOCAL_CLOUD["flavors"][0]  # type: ignore[index]
    twice = {**LOCAL_CLOUD, "flavors": [flavor, flavor]}
    assert problems({"clouds": [twice]}) == [
        "clouds[0]: flavor names repeat: m1.large; make them unique"
    ]
    assert problems({"clouds": [LOCAL_CLOUD, LOCAL_CLOUD]}) == [
        "(top level): cloud names repeat: private; make them unique"
    ]


def test_empty_flavor_list() -> None:
    assert problems({"clouds": [{**LOCAL_CLOUD, "flavors": []}]}) == [
        "clouds[0].flavors: must not be empty; list at least one"
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"pool": {"timeout_seconds": -1}, "policy": {"min_idle_seconds": -5}})
    assert len(found) == 2


def test_top_level_must_be_a_mapping() -> None:
    assert problems(["a"]) == ["(top level): must be a mapping with pool, clouds, policy"]


def test_collector_address_is_checked() -> None:
    (problem,) = problems({"pool": {"collector": "http://cm:9618/"}})
    assert problem.startswith("pool.collector: must be host or host:port")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("pool:\n  collector: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "YAML syntax error at line" in caught.value.problems[0]


def test_token_dir_is_expanded() -> None:
    config = parse_config({"pool": {"token_dir": "~/tokens"}})
    assert "~" not in str(config.pool.token_dir)


def test_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(ValueError):
        config.pool.collector = "elsewhere:9618"  # type: ignore[misc]


def test_default_token_dir_is_expanded_too() -> None:
    assert "~" not in str(Config().pool.token_dir)
