"""What the API server checks in ConfigMaps and Secrets beyond the schema: keys, base64, size;
and a Secret's write-only stringData folded into data."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tests.kube.kinds import Kind

Obj = dict[str, Any]
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def fold_string_data(secret: Obj) -> None:
    """`stringData` is write-only: merged into `data`, base64-encoded, never stored."""
    string_data = secret.pop("stringData", None) or {}
    if string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def data_causes(kind: Kind, obj: Obj) -> list[dict[str, str]]:
    causes = []
    keys: set[str] = set()
    for field in ("data", "binaryData"):
        for key, value in (obj.get(field) or {}).items():
            if not _CONFIG_KEY.match(key) or key in (".", ".."):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{field}[{key}]",
                        "message": f"Invalid value: {key!r}: a valid config key must "
                        "consist of alphanumeric characters, '-', '_' or '.'",
                    }
                )
            if key in keys:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": f"{field}[{key}]",
                        "message": f"Invalid value: {key!r}: duplicate of key present in data",
                    }
                )
            keys.add(key)
            if (kind.kind == "Secret" and field == "data") or field == "binaryData":
                try:
                    base64.b64decode(str(value), validate=True)
                except binascii.Error:
                    causes.append(
                        {
                            "reason": "FieldValueInvalid",
                            "field": f"{field}[{key}]",
                            "message": 'Invalid value: "<value omitted>": illegal base64 data',
                        }
                    )
    size = sum(len(str(v)) for f in ("data", "binaryData") for v in (obj.get(f) or {}).values())
    if size > 1024 * 1024:
        causes.append(
            {
                "reason": "FieldValueTooLong",
                "field": "data",
                "message": "Too long: must have at most 1048576 bytes",
            }
        )
    return causes
