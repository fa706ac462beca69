"""Label and field selectors with the API server's grammar and matching rules: `!=` and `notin`
match objects that lack the key; a malformed selector is a 400."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.kube.apierrors import bad_request

Matcher = Callable[[Mapping[str, str]], bool]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_SET = re.compile(r"^\s*(?P<key>[^\s!=<>()]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_BINARY = re.compile(
    r"^\s*(?P<key>[^\s!=<>()]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s!=<>(),]*)\s*$"
)
_EXISTS = re.compile(r"^\s*(?P<bang>!?)\s*(?P<key>[^\s!=<>()]+)\s*$")


def _split(selector: str) -> list[str]:
    """Split on the commas that are not inside an `in (...)` value set."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _check_key(key: str, selector: str) -> None:
    if len(key.rsplit("/", 1)[-1]) > 63 or not _KEY.match(key):
        raise bad_request(
            f"unable to parse requirement: key: Invalid value: {key!r}: name part must consist "
            "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            f"alphanumeric character (in selector {selector!r})"
        )


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(
            f"unable to parse requirement: values[0]: Invalid value: {value!r}: a valid label "
            "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
            f"must start and end with an alphanumeric character (in selector {selector!r})"
        )


def _requirement(text: str, selector: str) -> Matcher:
    if found := _SET.match(text):
        key, op = found["key"], found["op"]
        values = {v.strip() for v in found["values"].split(",")}
        _check_key(key, selector)
        for value in values:
            _check_value(value, selector)
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    if found := _BINARY.match(text):
        key, op, value = found["key"], found["op"], found["value"]
        _check_key(key, selector)
        if op in ("<", ">"):
            if not re.fullmatch(r"-?\d+", value):
                raise bad_request(
                    f"unable to parse requirement: for 'Gt', 'Lt' operators, the "
                    f"value must be an integer (in selector {selector!r})"
                )
            bound = int(value)
            return lambda labels: _compare(labels.get(key), op, bound)
        _check_value(value, selector)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if found := _EXISTS.match(text):
        key = found["key"]
        _check_key(key, selector)
        if found["bang"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(
        f"unable to parse requirement: found {text.strip()!r}, expected: "
        f"identifier, '!', 'in', 'notin', '=', '==', '!=' (in selector {selector!r})"
    )


def _compare(label: str | None, op: str, bound: int) -> bool:
    if label is None or not re.fullmatch(r"-?\d+", label):
        return False
    return int(label) > bound if op == ">" else int(label) < bound


def label_matcher(selector: str | None) -> Matcher:
    """A label selector (`a=b,c in (d,e),!f`) -> a predicate over an object's labels."""
    if selector is None or not selector.strip():
        return lambda labels: True
    requirements = [_requirement(part, selector) for part in _split(selector)]
    return lambda labels: all(r(labels) for r in requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The value a field selector compares (an absent field compares as the empty string)."""
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, Mapping) and path == "source":
        return str(current.get("component", ""))
    return current if isinstance(current, str) else str(current).lower()


def field_matcher(
    selector: str | None, allowed: tuple[str, ...], kind: str
) -> Callable[[Mapping[str, Any]], bool]:
    """A field selector (`status.phase=Running,spec.nodeName!=`) over the fields `allowed`."""
    if selector is None or not selector.strip():
        return lambda obj: True
    tests: list[tuple[str, bool, str]] = []
    for part in selector.split(","):
        found = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not found:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        path, op, value = found.groups()
        if path not in allowed:
            raise bad_request(
                f'"{path}" is not a known field selector: only {kind} fields {", ".join(allowed)}'
            )
        tests.append((path, op != "!=", value))
    return lambda obj: all((field_value(obj, p) == v) == eq for p, eq, v in tests)
