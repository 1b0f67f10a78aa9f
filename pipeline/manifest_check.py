"""Check the rendered Kubernetes manifests against the deployment before they are applied.

``python -m infra k8s`` fills in the values it is given and keeps a placeholder
for every value it is not (``PLACEHOLDER``, all-zero ids and digests: see
``infra/manifests.py``). The workload identity only works when the pods run as
``system:serviceaccount:<k8sNamespace>:<k8sServiceAccount>``, the subject of
the federated credential main.bicep creates. This command fails (exit 1), naming
the file and the problem, when the rendered manifests

* still hold a placeholder value;
* put an object in another namespace than ``--namespace`` (the ``k8sNamespace``
  output), or name the Namespace differently;
* name the service account differently from ``--service-account`` (the
  ``k8sServiceAccount`` output), annotate it with another client id than
  ``--workload-client-id``, or run a pod as another service account;
* run a container from another image than ``--image`` (the scanned digest).

Usage::

    python -m pipeline.manifest_check build/k8s --namespace "$K8S_NAMESPACE" \\
        --service-account "$K8S_SERVICE_ACCOUNT" --workload-client-id "$WORKLOAD_CLIENT_ID" --image "$IMAGE_REF"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from infra.manifests import PLACEHOLDER, K8sConfig

_DEFAULTS: Final = K8sConfig()
PLACEHOLDER_MARKERS: Final = tuple(sorted({
    PLACEHOLDER.lower(),
    _DEFAULTS.workload_client_id,
    _DEFAULTS.entra_tenant_id,
    _DEFAULTS.image.rsplit("@", 1)[-1],
}))
"""Strings that only occur in a manifest rendered with infra's placeholder defaults (compared case-insensitively)."""

CLIENT_ID_ANNOTATION: Final = "azure.workload.identity/client-id"
_POD_OWNERS: Final = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


@dataclass(frozen=True)
class Expected:
    """What the deployment says the manifests must hold."""

    namespace: str
    service_account: str
    workload_client_id: str
    image: str


def load_manifests(directory: Path) -> list[tuple[str, dict[str, Any], str]]:
    """``(file name, object, file text)`` for every YAML document under ``directory``, in name order."""
    found = []
    for path in sorted(directory.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for document in yaml.safe_load_all(text):
            if document:
                found.append((path.relative_to(directory).as_posix(), document, text))
    return found


def _containers(obj: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    yield from spec.get("initContainers", []) or []
    yield from spec.get("containers", []) or []


def problems(manifests: Sequence[tuple[str, dict[str, Any], str]], expected: Expected) -> list[str]:
    """Every way ``manifests`` differ from ``expected`` (empty when they match)."""
    found: list[str] = []
    if not manifests:
        return ["no manifests found"]
    texts = {file: text for file, _, text in manifests}
    for name, text in sorted(texts.items()):
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for marker in PLACEHOLDER_MARKERS:
            if marker.lower() in body.lower():
                found.append(f"{name}: still holds the placeholder {marker!r}")
    accounts = []
    for name, obj, _ in manifests:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        where = f"{name}: {kind} {meta.get('name')}"
        if kind == "Namespace":
            if meta.get("name") != expected.namespace:
                found.append(f"{where}: namespace is not {expected.namespace!r}")
        elif meta.get("namespace") != expected.namespace:
            found.append(f"{where}: in namespace {meta.get('namespace')!r}, not {expected.namespace!r}")
        if kind == "ServiceAccount":
            accounts.append(meta.get("name"))
            if meta.get("name") != expected.service_account:
                found.append(f"{where}: not the federated service account {expected.service_account!r}")
            if (meta.get("annotations") or {}).get(CLIENT_ID_ANNOTATION) != expected.workload_client_id:
                found.append(f"{where}: {CLIENT_ID_ANNOTATION} is not the workload identity's client id")
        if kind in _POD_OWNERS:
            pod = obj.get("spec", {}).get("template", {}).get("spec", {})
            if pod.get("serviceAccountName") != expected.service_account:
                found.append(f"{where}: pods run as {pod.get('serviceAccountName')!r}, "
                             f"not {expected.service_account!r}")
            for container in _containers(obj):
                if container.get("image") != expected.image:
                    found.append(f"{where}: container {container.get('name')} runs {container.get('image')!r}, "
                                 f"not {expected.image!r}")
    if expected.service_account not in accounts:
        found.append(f"no ServiceAccount {expected.service_account!r} is rendered")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Check ``DIR`` against the given values; print a one-line summary, or each problem and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the rendered manifests (python -m infra k8s --out)")
    parser.add_argument("--namespace", required=True, help="Bicep output k8sNamespace")
    parser.add_argument("--service-account", required=True, help="Bicep output k8sServiceAccount")
    parser.add_argument("--workload-client-id", required=True, help="Bicep output workloadIdentityClientId")
    parser.add_argument("--image", required=True, help="the image reference, by digest")
    args = parser.parse_args(argv)
    expected = Expected(args.namespace, args.service_account, args.workload_client_id, args.image)
    manifests = load_manifests(args.directory)
    issues = problems(manifests, expected)
    for issue in issues:
        print(f"::error::{issue}", file=sys.stderr)
    if issues:
        return 1
    print(f"{args.directory}: {len(manifests)} objects, namespace {expected.namespace}, "
          f"service account {expected.service_account}, no placeholder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
