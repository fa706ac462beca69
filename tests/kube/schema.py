"""Bodies are checked against the official OpenAPI schemas that `kubernetes-validate` bundles
(the newest version it has, the strict variant: unknown fields are refused)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes_validate.utils import latest_version
from referencing import Registry, Resource

from tests.kube.kinds import Kind


@functools.cache
def schema_dir() -> Path:
    """The strict schemas of the newest Kubernetes version the package carries."""
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    folder = Path(str(root)) / f"v{latest_version()}-local-strict"
    if not folder.is_dir():
        raise RuntimeError(f"kubernetes-validate has no strict schemas at {folder}")
    return folder


@functools.cache
def _registry() -> Registry:
    definitions = json.loads((schema_dir() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()  # type: ignore[no-any-return]


@functools.cache
def _validator(kind: Kind) -> jsonschema.Draft202012Validator:
    api = kind.group.split(".")[0] + "-" if kind.group else ""
    schema = json.loads(
        (schema_dir() / f"{kind.kind.lower()}-{api}{kind.version}.json").read_text()
    )
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _field(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _cause(error: jsonschema.ValidationError) -> dict[str, str]:
    """One schema failure as the server's StatusCause: reason, message, field."""
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        return {
            "reason": "FieldValueRequired",
            "message": "Required value",
            "field": _field([*path, name]),
        }
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message.split("(")[-1])
        field = _field([*path, extra[0]]) if extra else _field(path)
        return {
            "reason": "FieldValueInvalid",
            "message": f'unknown field "{field}"',
            "field": field,
        }
    if error.validator == "enum":
        return {
            "reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {json.dumps(error.instance)}: supported values: "
            + ", ".join(json.dumps(v) for v in error.validator_value),
            "field": _field(path),
        }
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {json.dumps(error.instance)[:80]}: {error.message[:200]}",
        "field": _field(path),
    }


def schema_causes(kind: Kind, body: dict[str, Any]) -> list[dict[str, str]]:
    """Every way `body` fails the official schema of `kind` (empty when it passes)."""
    errors = sorted(_validator(kind).iter_errors(body), key=lambda e: list(e.absolute_path))
    causes = []
    for error in errors:
        # oneOf failures (quantities, int-or-string) explain themselves through their context
        best = jsonschema.exceptions.best_match([error, *error.context]) if error.context else error
        causes.append(_cause(best or error))
    return causes
