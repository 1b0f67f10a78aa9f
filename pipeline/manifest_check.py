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
* run a container from another image than ``--image`` (the scanned digest);
* leave empty a setting the pods cannot do without (:data:`REQUIRED_SETTINGS`:
  tenant, audience, Key Vault URI, storage account, client id, Application Insights), or are given an
  empty ``--namespace``, ``--service-account``, ``--workload-client-id`` or
  ``--image``. ``python -m infra k8s --entra-tenant-id ""`` renders
  ``MEDAI_ENTRA_TENANT_ID: ''`` without complaint, and an empty value compared
  with an empty expectation would otherwise pass.

Usage::

    python -m pipeline.manifest_check build/k8s --namespace "$K8S_NAMESPACE" \\
        --service-account "$K8S_SERVICE_ACCOUNT" --workload-client-id "$WORKLOAD_CLIENT_ID" --image "$IMAGE_REF"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
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

REQUIRED_SETTINGS: Final = {
    "MEDAI_ENTRA_TENANT_ID": "entraTenantId",
    "MEDAI_ENTRA_AUDIENCE": "entraAudience",
    "MEDAI_KEY_VAULT_URI": "keyVaultUri",
    "AzureWebJobsStorage__accountName": "storageAccountName",
    "AzureWebJobsStorage__clientId": "workloadIdentityClientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "appInsightsConnectionString",
}
"""ConfigMap settings that must not be empty, with the main.bicep output each comes from.

Entra mode (infra's ``MEDAI_AUTH_MODE``) without a tenant or an audience is a start-up
``ConfigurationError`` (security/auth.py); without the vault URI the API keys and the PHI hash key
cannot be read; without the account name and the identity's client id the Functions host has no
storage, so the pods never become ready; without the Application Insights connection string the
pods run but the audit trail and the logs reach no workspace, silently."""

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
    # Named by the command-line flag that carries each expected value.
    found: list[str] = [f"--{name.replace('_', '-')} is empty"
                        for name, value in asdict(expected).items() if not value.strip()]
    if not manifests:
        return [*found, "no manifests found"]
    texts = {file: text for file, _, text in manifests}
    for name, text in sorted(texts.items()):
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for marker in PLACEHOLDER_MARKERS:
            if marker.lower() in body.lower():
                found.append(f"{name}: still holds the placeholder {marker!r}")
    accounts = []
    settings_seen = False
    for name, obj, _ in manifests:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        where = f"{name}: {kind} {meta.get('name')}"
        if kind == "ConfigMap" and set(REQUIRED_SETTINGS) & set(obj.get("data") or {}):
            settings_seen = True
            found.extend(_empty_settings(where, obj.get("data") or {}))
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
    if not settings_seen:
        found.append(f"no ConfigMap holds the settings {', '.join(REQUIRED_SETTINGS)}")
    return found


def _empty_settings(where: str, data: Mapping[str, Any]) -> list[str]:
    """A problem for every :data:`REQUIRED_SETTINGS` key of a ConfigMap's ``data`` that is missing or blank."""
    return [f"{where}: {key} is {'missing' if key not in data else 'empty'} (main.bicep output {output})"
            for key, output in REQUIRED_SETTINGS.items() if not str(data.get(key) or "").strip()]


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
