"""Reaching a Kubernetes cluster the way kubectl does: a kubeconfig file and context, or, without
one, this pod's ServiceAccount (in-cluster). Shared by the Kubernetes provider and leader
election; problems are ConfigErrors naming the setting to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bursting.errors import ConfigError

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def load_cluster(
    where: str,
    prefix: str,
    kubeconfig: Path | None,
    context: str | None,
    namespace: str | None,
    in_cluster_hint: str,
) -> tuple[Any, str | None]:
    """A client Configuration for the cluster, and the namespace to use: `namespace`, else the
    chosen context's, else (in-cluster) the pod's own; None when nothing names one. `prefix` is
    how the caller's config spells its settings ("kubernetes." for kubernetes.kubeconfig)."""
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        if kubeconfig is not None:
            if not kubeconfig.is_file():
                raise ConfigError(
                    where, [f"{prefix}kubeconfig: no file {kubeconfig}; fix the path"]
                )
            namespace = namespace or _context_namespace(where, prefix, kubeconfig, context)
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            if namespace is None and IN_CLUSTER_NAMESPACE.is_file():
                namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
    except ConfigException as exc:
        field = f"{prefix}kubeconfig" if kubeconfig else prefix.rstrip(".") or "kubeconfig"
        hint = f"check the file and {prefix}context" if kubeconfig else in_cluster_hint
        raise ConfigError(where, [f"{field}: {exc}; {hint}"]) from None
    return configuration, namespace


def _context_namespace(
    where: str, prefix: str, kubeconfig: Path, context: str | None
) -> str | None:
    """The namespace the kubeconfig's chosen context names (None: it names none)."""
    from kubernetes import config as kube_config

    contexts, active = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    chosen = active
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts))
            raise ConfigError(
                where, [f"{prefix}context: no context {context!r} in {kubeconfig} (has: {names})"]
            )
    found = (chosen or {}).get("context", {}).get("namespace")
    return str(found) if found else None
