"""DAG files only declare: from this project they import the Airflow provider and nothing else.

import-linter (`.importlinter`, run by `make lint`) checks the packages; dags/ is a folder of
scripts Airflow loads by path, so its imports are read here with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVIDER = "bursting.airflow"


def project_imports(source: str) -> list[str]:
    """Every `bursting` module a file imports (`from bursting import x` counts as bursting.x)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "bursting"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "bursting":
                continue
            if node.module == "bursting":
                found += [f"bursting.{a.name}" for a in node.names]
            else:
                found.append(node.module)
    return found


def outside_provider(source: str) -> list[str]:
    return [
        m for m in project_imports(source) if m != PROVIDER and not m.startswith(PROVIDER + ".")
    ]


DAG_FILES = sorted((REPO / "dags").glob("*.py"))


def test_there_are_dag_files_to_check() -> None:
    assert DAG_FILES, "no DAG files found in dags/"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_only_the_provider(path: Path) -> None:
    source = path.read_text()
    assert project_imports(source), f"{path.name} does not use the provider at all"
    assert outside_provider(source) == []


@pytest.mark.parametrize(
    ("source", "offending"),
    [
        ("import bursting.planner", ["bursting.planner"]),
        ("import bursting", ["bursting"]),
        ("from bursting import controller, airflow", ["bursting.controller"]),
        ("from bursting.pool.htcondor import HTCondorPool", ["bursting.pool.htcondor"]),
        ("def f():\n    from bursting.runtime import build\n", ["bursting.runtime"]),
        ("from bursting.airflowish import x", ["bursting.airflowish"]),
        ("from bursting.airflow.campaign import split\nimport os", []),
        ("from bursting import airflow", []),
    ],
)
def test_the_check_catches_imports_beyond_the_provider(source: str, offending: list[str]) -> None:
    assert outside_provider(source) == offending
