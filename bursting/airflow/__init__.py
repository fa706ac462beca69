"""The HTCondor provider for Apache Airflow: hook, submit operator, cluster sensor and trigger.

Registered through the `apache_airflow_provider` entry point, so `airflow providers list` shows
it and the UI offers the `htcondor` connection type with its own form fields.
"""

from __future__ import annotations

from typing import Any

from bursting import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "bursting",
        "name": "HTCondor (bursting)",
        "description": "Submit and watch HTCondor job clusters from Airflow; the pool may burst "
        "onto clouds.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "HTCondor",
                "external-doc-url": "https://htcondor.org",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "HTCondor",
                "python-modules": ["bursting.airflow.operators.submit"],
            }
        ],
        "sensors": [
            {"integration-name": "HTCondor", "python-modules": ["bursting.airflow.sensors.cluster"]}
        ],
        "hooks": [
            {"integration-name": "HTCondor", "python-modules": ["bursting.airflow.hooks.htcondor"]}
        ],
        "triggers": [
            {
                "integration-name": "HTCondor",
                "python-modules": ["bursting.airflow.triggers.cluster"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "bursting.airflow.hooks.htcondor.HTCondorHook",
                "hook-name": "HTCondor",
                "connection-type": "htcondor",
                "conn-fields": {
                    "schedd": {
                        "label": "Schedd name",
                        "schema": {"type": ["string", "null"]},
                        "description": "Empty: the only schedd the collector knows.",
                    },
                    "timeout": {
                        "label": "Call timeout (s)",
                        "schema": {"type": ["integer", "null"], "default": 20},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "extra"],
                    "relabeling": {"host": "Collector host", "password": "IDTOKEN"},
                    "placeholders": {"host": "cm.example.org", "port": "9618"},
                },
            }
        ],
    }
