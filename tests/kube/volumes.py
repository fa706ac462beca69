"""What the kubelet resolves before it starts a container: ConfigMap and Secret volumes as
files (items, modes, subPath), emptyDir, the environment (value, valueFrom, envFrom, $(VAR)),
command and args. A missing source keeps the container waiting, with the kubelet's message."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

from tests.kube import quantity
from tests.kube.runners import Launch, Mount, expand

Lookup = Callable[[str, str], dict[str, Any] | None]  # (kind, name) -> object in the namespace


class NotReady(Exception):
    """The container cannot start yet: `reason` is the waiting reason or the event's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _source_data(kind: str, obj: dict[str, Any]) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    if kind == "ConfigMap":
        data.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    else:
        data.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
    return data


def volume_files(volume: dict[str, Any], lookup: Lookup) -> dict[str, tuple[bytes, int]] | None:
    """A volume's files (relative path -> content, mode); None for an optional source that
    is absent (an empty directory)."""
    name = volume.get("name", "")
    if "emptyDir" in volume:
        return {}
    for field, kind, ref in (
        ("configMap", "ConfigMap", "name"),
        ("secret", "Secret", "secretName"),
    ):
        if field not in volume:
            continue
        source = volume[field] or {}
        obj = lookup(kind, source.get(ref, ""))
        what = kind.lower()
        if obj is None:
            if source.get("optional"):
                return {}
            raise NotReady(
                "FailedMount",
                f'MountVolume.SetUp failed for volume "{name}" : '
                f'{what} "{source.get(ref, "")}" not found',
            )
        data = _source_data(kind, obj)
        mode = int(source.get("defaultMode", 0o644))
        items = source.get("items")
        if not items:
            return {key: (value, mode) for key, value in data.items()}
        files = {}
        for item in items:
            if item.get("key") not in data:
                if source.get("optional"):
                    continue
                raise NotReady(
                    "FailedMount",
                    f'MountVolume.SetUp failed for volume "{name}" : '
                    f"{what} references non-existent config key: "
                    f"{item.get('key')}",
                )
            files[item.get("path") or item["key"]] = (
                data[item["key"]],
                int(item.get("mode", mode)),
            )
        return files
    kinds = sorted(k for k in volume if k != "name")
    raise NotReady(
        "FailedMount",
        f'MountVolume.SetUp failed for volume "{name}" : volume type '
        f"{kinds} is not supported by the stand-in's kubelet",
    )


def mounts(pod: dict[str, Any], container: dict[str, Any], lookup: Lookup) -> tuple[Mount, ...]:
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    found = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        files = volume_files(volume, lookup) or {}
        writable = "emptyDir" in volume and not mount.get("readOnly")
        sub_path = mount.get("subPath")
        if sub_path:
            if sub_path in files:
                found.append(Mount(mount["mountPath"], {"": files[sub_path]}, file=True))
                continue
            inner = {
                k.removeprefix(sub_path + "/"): v
                for k, v in files.items()
                if k.startswith(sub_path + "/")
            }
            found.append(Mount(mount["mountPath"], inner, read_only=not writable))
            continue
        found.append(Mount(mount["mountPath"], files, read_only=not writable))
    return tuple(found)


def _field_ref(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIP": status.get("podIP") or "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    for field in ("labels", "annotations"):
        prefix = f"metadata.{field}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(field) or {}).get(path[len(prefix) : -2], ""))
    raise NotReady("CreateContainerConfigError", f"unsupported fieldRef {path!r}")


def _resource_ref(container: dict[str, Any], ref: dict[str, Any]) -> str:
    which, _, name = str(ref.get("resource", "")).partition(".")
    value = ((container.get("resources") or {}).get(which) or {}).get(name)
    if value is None:
        return "0"
    divisor = quantity.parse(ref.get("divisor") or "1")
    return str(math.ceil(quantity.parse(value) / divisor))


def environment(pod: dict[str, Any], container: dict[str, Any], lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if field not in source:
                continue
            ref = source[field] or {}
            obj = lookup(kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise NotReady(
                    "CreateContainerConfigError",
                    f'{kind.lower()} "{ref.get("name", "")}" not found',
                )
            for key, value in _source_data(kind, obj).items():
                env[source.get("prefix", "") + key] = value.decode(errors="replace")
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            env[name] = _resource_ref(container, source["resourceFieldRef"])
        else:
            env_value = _key_ref(source, lookup)
            if env_value is not None:
                env[name] = env_value
    return env


def _key_ref(source: dict[str, Any], lookup: Lookup) -> str | None:
    for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        if field not in source:
            continue
        ref = source[field]
        obj = lookup(kind, ref.get("name", ""))
        data = _source_data(kind, obj) if obj is not None else None
        if data is None or ref.get("key") not in data:
            if ref.get("optional"):
                return None
            why = (
                f'{kind.lower()} "{ref.get("name")}" not found'
                if data is None
                else f"couldn't find key {ref.get('key')} in {kind} {ref.get('name')}"
            )
            raise NotReady("CreateContainerConfigError", why)
        return data[ref["key"]].decode(errors="replace")
    raise NotReady("CreateContainerConfigError", f"unsupported valueFrom {sorted(source)}")


def launch(pod: dict[str, Any], container: dict[str, Any], lookup: Lookup) -> Launch:
    """Everything a runner needs to start `container` of `pod`; raises NotReady."""
    files = mounts(pod, container, lookup)
    env = environment(pod, container, lookup)
    resources = container.get("resources") or {}
    sized = resources.get("limits") or resources.get("requests") or {}
    cpus = float(quantity.parse(sized["cpu"])) if "cpu" in sized else None
    memory = int(quantity.parse(sized["memory"]) // 2**20) if "memory" in sized else None
    meta = pod["metadata"]
    return Launch(
        namespace=meta.get("namespace", ""),
        pod=meta["name"],
        uid=meta["uid"],
        container=container["name"],
        image=container["image"],
        command=tuple(expand(c, env) for c in container.get("command") or []),
        args=tuple(expand(a, env) for a in container.get("args") or []),
        env=env,
        mounts=files,
        cpus=cpus,
        memory_mb=memory,
        labels=dict(meta.get("labels") or {}),
        working_dir=container.get("workingDir"),
    )
