"""PATCH bodies as the API server applies them: JSON merge patch (RFC 7386; strategic merge
patches are treated alike, lists replaced) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from tests.kube import apierrors
from tests.kube.apierrors import ApiError


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (strategic merge patches are treated the same: lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise apierrors.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise apierrors.bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        parts = _pointer(op.get("path", ""))
        if kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise ApiError(
                    422,
                    f"the server rejected our request due to an error in our "
                    f"request: testing value {op.get('path')} failed",
                    "Invalid",
                )
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, _pointer(op.get("from", ""))))
            if kind == "move":
                doc = _set(doc, _pointer(op["from"]), None, remove=True)
            doc = _set(doc, parts, value, insert=True)
        elif kind == "add":
            doc = _set(doc, parts, copy.deepcopy(op.get("value")), insert=True)
        elif kind == "replace":
            _get(doc, parts)
            doc = _set(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _set(doc, parts, None, remove=True)
        else:
            raise apierrors.bad_request(f"unknown JSON patch operation {kind!r}")
    return doc


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        try:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(
                422,
                f"the server rejected our request due to an error in our request: "
                f"path /{'/'.join(parts)} does not exist",
                "Invalid",
            ) from None
    return doc


def _set(doc: Any, parts: list[str], value: Any, insert: bool = False, remove: bool = False) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if remove:
            parent.pop(index)
        elif insert:
            parent.insert(index, value)
        else:
            parent[index] = value
    elif isinstance(parent, dict):
        if remove:
            if last not in parent:
                _get(doc, parts)
            parent.pop(last)
        else:
            parent[last] = value
    else:
        raise apierrors.bad_request(f"cannot patch inside a scalar at /{'/'.join(parts)}")
    return doc
