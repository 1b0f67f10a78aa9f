"""Kubernetes manifests for AKS, generated from the same Python as the Bicep.

One image, two Deployments that differ only by configuration:

* ``medai-http``: every HTTP route; the blob functions are disabled with
  ``AzureWebJobs.<name>.Disabled``. Scaled by a HorizontalPodAutoscaler on CPU
  (KEDA does not scale HTTP-triggered functions).
* ``medai-blob-worker``: the polling blob trigger (``LogsAndContainerScan``) and
  the poison-queue function; the HTTP function is disabled. Scaled from zero by
  a KEDA ``ScaledObject`` (``azure-blob`` scaler counting ``inference-input``)
  authenticated with workload identity (``TriggerAuthentication``, provider
  ``azure-workload``), never with a connection string.

Both run as the workload identity's service account, non-root, with a
read-only root filesystem. Values not known at build time (image digest,
identity client id, storage account, vault URI...) come from
:class:`K8sConfig`; the committed manifests carry clearly marked placeholders
and the deploy pipeline regenerates them with the real values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from . import contract

PLACEHOLDER = "PLACEHOLDER"
_ZERO_DIGEST = "sha256:" + "0" * 64
# A statement of its own, so that its nosec covers this one string: on a line of the pod template's dict
# literal, bandit applies it to every string of that statement and warns about each one it suppresses nothing for.
_TMP_MOUNT = "/tmp"  # nosec B108  # the mount point of a per-pod emptyDir, not a shared host /tmp

Manifest = dict[str, Any]


@dataclass(frozen=True)
class K8sConfig:
    """Deployment-specific values of the manifests (defaults are placeholders)."""

    image: str = f"{PLACEHOLDER.lower()}.azurecr.io/medai-flow@{_ZERO_DIGEST}"
    workload_client_id: str = "00000000-0000-0000-0000-000000000000"
    storage_account: str = f"{PLACEHOLDER.lower()}storage"
    namespace: str = "medai"
    service_account: str = "medai-inference"
    key_vault_uri: str = f"https://{PLACEHOLDER.lower()}.vault.azure.net/"
    entra_tenant_id: str = "00000000-0000-0000-0000-000000000000"
    entra_audience: str = f"api://{PLACEHOLDER.lower()}"
    appinsights_connection_string: str = f"InstrumentationKey={PLACEHOLDER}"
    worker_processes: int = 1
    http_min_replicas: int = 2
    http_max_replicas: int = 10
    worker_max_replicas: int = 10
    blobs_per_worker: int = 5

    @property
    def is_placeholder(self) -> bool:
        """True when any value is still a placeholder (the committed manifests)."""
        return self == K8sConfig() or PLACEHOLDER.lower() in str(self).lower()


_PART_OF = "medai-flow"
_HTTP = "http"
_WORKER = "blob-worker"


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "medai-flow",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": _PART_OF,
    }


def _meta(name: str, cfg: K8sConfig, component: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": cfg.namespace}
    meta["labels"] = _labels(component) if component else {"app.kubernetes.io/part-of": _PART_OF}
    meta.update(extra)
    return meta


def namespace(cfg: K8sConfig) -> Manifest:
    """The namespace, enforcing the ``restricted`` Pod Security Standard."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": cfg.namespace,
            "labels": {
                "app.kubernetes.io/part-of": _PART_OF,
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def service_account(cfg: K8sConfig) -> Manifest:
    """The service account federated with the workload identity."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(
            cfg.service_account, cfg,
            annotations={"azure.workload.identity/client-id": cfg.workload_client_id},
        ),
        "automountServiceAccountToken": False,
    }


def config_map(cfg: K8sConfig) -> Manifest:
    """Settings shared by both Deployments (nothing secret: secrets stay in Key Vault)."""
    account = cfg.storage_account
    data = {
        "AzureWebJobsStorage__accountName": account,
        "AzureWebJobsStorage__blobServiceUri": f"https://{account}.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": f"https://{account}.queue.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": cfg.workload_client_id,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": cfg.appinsights_connection_string,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"Authorization=AAD;ClientId={cfg.workload_client_id}",
        "FUNCTIONS_WORKER_PROCESS_COUNT": str(cfg.worker_processes),
        "MEDAI_ENVIRONMENT": contract.ENVIRONMENT,
        "MEDAI_KEY_VAULT_URI": cfg.key_vault_uri,
        "MEDAI_AUTH_MODE": contract.AUTH_MODE,
        "MEDAI_ENTRA_TENANT_ID": cfg.entra_tenant_id,
        "MEDAI_ENTRA_AUDIENCE": cfg.entra_audience,
        "MEDAI_BLOB_SOURCE": "LogsAndContainerScan",
        "MEDAI_BLOB_INPUT_CONTAINER": contract.INPUT_CONTAINER,
        "MEDAI_BLOB_RESULTS_CONTAINER": contract.RESULTS_CONTAINER,
        "MEDAI_BLOB_ERRORS_CONTAINER": contract.ERRORS_CONTAINER,
        "MEDAI_BLOB_ARCHIVE_CONTAINER": contract.ARCHIVE_CONTAINER,
        "MEDAI_BLOB_POISON_QUEUE": contract.POISON_QUEUE,
        **{k: v for k, v in contract.PERFORMANCE_PRESETS["aks-pod"].items() if k != "FUNCTIONS_WORKER_PROCESS_COUNT"},
    }
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("medai-config", cfg), "data": data}


def _http_get(path: str) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}}


def _tcp() -> dict[str, Any]:
    return {"tcpSocket": {"port": "http"}}


def _pod_template(
    cfg: K8sConfig, component: str, disabled: tuple[str, ...], probes: dict[str, Any], resources: dict[str, Any]
) -> dict[str, Any]:
    env = [{"name": f"AzureWebJobs.{fn}.Disabled", "value": "true"} for fn in disabled]
    container = {
        "name": "functions",
        "image": cfg.image,
        "imagePullPolicy": "Always",
        "ports": [{"name": "http", "containerPort": contract.CONTAINER_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": "medai-config"}}],
        "env": env,
        "resources": resources,
        **probes,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            # The Functions host and the Python worker write temp files, logs and data-protection keys;
            # /tmp is a pod-private emptyDir, not a shared host directory.
            {"name": "tmp", "mountPath": _TMP_MOUNT},
            {"name": "host-data", "mountPath": "/home/data"},
            {"name": "host-logs", "mountPath": "/home/LogFiles"},
            {"name": "aspnet", "mountPath": "/home/ASP.NET"},
        ],
    }
    labels = {**_labels(component), "azure.workload.identity/use": "true"}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": cfg.service_account,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 60,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": _labels(component)},
                }
            ],
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "host-data", "emptyDir": {"sizeLimit": "256Mi"}},
                {"name": "host-logs", "emptyDir": {"sizeLimit": "256Mi"}},
                {"name": "aspnet", "emptyDir": {"sizeLimit": "16Mi"}},
            ],
        },
    }


def http_deployment(cfg: K8sConfig) -> Manifest:
    """The HTTP Deployment; replicas are owned by the HPA, so none are declared."""
    probes = {
        "startupProbe": {**_http_get(contract.LIVENESS_PATH), "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {**_http_get(contract.LIVENESS_PATH), "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 3},
        "readinessProbe": {**_http_get(contract.READINESS_PATH), "periodSeconds": 5, "timeoutSeconds": 3,
                           "failureThreshold": 3},
    }
    resources = {"requests": {"cpu": "1", "memory": "1536Mi"}, "limits": {"cpu": "2", "memory": "3Gi"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("medai-http", cfg, _HTTP),
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _labels(_HTTP)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": _pod_template(
                cfg, _HTTP, (contract.FUNCTION_BLOB, contract.FUNCTION_POISON), probes, resources
            ),
        },
    }


def http_service(cfg: K8sConfig) -> Manifest:
    """Cluster-internal Service of the HTTP Deployment (expose it through the cluster's ingress)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("medai-http", cfg, _HTTP),
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(_HTTP),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def http_hpa(cfg: K8sConfig) -> Manifest:
    """CPU-based autoscaling of the HTTP Deployment (inference is CPU-bound)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta("medai-http", cfg, _HTTP),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "medai-http"},
            "minReplicas": cfg.http_min_replicas,
            "maxReplicas": cfg.http_max_replicas,
            "metrics": [
                {"type": "Resource",
                 "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 300,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                "scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}]},
            },
        },
    }


def pdb(cfg: K8sConfig, component: str, name: str, **budget: Any) -> Manifest:
    """A PodDisruptionBudget for one component."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, cfg, component),
        "spec": {**budget, "selector": {"matchLabels": _labels(component)}},
    }


def worker_deployment(cfg: K8sConfig) -> Manifest:
    """The blob worker; KEDA owns its replica count (from zero).

    The HTTP function is disabled here, so the app's health routes are not served;
    the probes check that the Functions host is listening instead.
    """
    probes = {
        "startupProbe": {**_tcp(), "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {**_tcp(), "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**_tcp(), "periodSeconds": 10, "failureThreshold": 3},
    }
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("medai-blob-worker", cfg, _WORKER),
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _labels(_WORKER)},
            "template": _pod_template(cfg, _WORKER, (contract.FUNCTION_HTTP,), probes, resources),
        },
    }


def trigger_authentication(cfg: K8sConfig) -> Manifest:
    """KEDA authentication with the workload identity (no connection string, no secret)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _meta("medai-storage-workload-identity", cfg, _WORKER),
        "spec": {"podIdentity": {"provider": "azure-workload", "identityId": cfg.workload_client_id}},
    }


def scaled_object(cfg: K8sConfig) -> Manifest:
    """Scale the blob worker on the number of blobs waiting in the input container."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta("medai-blob-worker", cfg, _WORKER),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "medai-blob-worker"},
            "minReplicaCount": 0,
            "maxReplicaCount": cfg.worker_max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "azure-blob",
                    "metadata": {
                        "accountName": cfg.storage_account,
                        "blobContainerName": contract.INPUT_CONTAINER,
                        "blobCount": str(cfg.blobs_per_worker),
                        "activationBlobCount": "0",
                        "recursive": "true",
                    },
                    "authenticationRef": {"name": "medai-storage-workload-identity"},
                }
            ],
        },
    }


def network_policies(cfg: K8sConfig) -> list[Manifest]:
    """Default deny, then only what the service needs.

    Egress: DNS, and HTTPS to Azure (Entra ID, Storage, Key Vault, Application
    Insights have no fixed address ranges, so port 443 is the narrowest portable
    rule). Ingress: only the HTTP pods, only on their container port.
    """
    everyone = {"matchLabels": {"app.kubernetes.io/part-of": _PART_OF}}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny-all", cfg),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("allow-dns-and-azure-egress", cfg),
            "spec": {
                "podSelector": everyone,
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                    {"ports": [{"protocol": "TCP", "port": 443}]},
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("allow-http-ingress", cfg, _HTTP),
            "spec": {
                "podSelector": {"matchLabels": _labels(_HTTP)},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": contract.CONTAINER_PORT}]}],
            },
        },
    ]


def manifests(cfg: K8sConfig) -> dict[str, list[Manifest]]:
    """Every manifest, grouped by file name; files apply in name order (namespace first)."""
    return {
        "00-namespace.yaml": [namespace(cfg)],
        "01-serviceaccount.yaml": [service_account(cfg)],
        "02-configmap.yaml": [config_map(cfg)],
        "03-networkpolicies.yaml": network_policies(cfg),
        "10-http-deployment.yaml": [http_deployment(cfg)],
        "11-http-service.yaml": [http_service(cfg)],
        "12-http-hpa.yaml": [http_hpa(cfg)],
        "13-http-pdb.yaml": [pdb(cfg, _HTTP, "medai-http", minAvailable=1)],
        "20-blob-worker-deployment.yaml": [worker_deployment(cfg)],
        "21-blob-worker-triggerauthentication.yaml": [trigger_authentication(cfg)],
        "22-blob-worker-scaledobject.yaml": [scaled_object(cfg)],
        "23-blob-worker-pdb.yaml": [pdb(cfg, _WORKER, "medai-blob-worker", maxUnavailable=1)],
    }


def render(cfg: K8sConfig) -> dict[str, str]:
    """The manifests as YAML text per file (deterministic: key order as written, no sorting)."""
    header = "# Generated by `python -m infra k8s` from infra/manifests.py. Do not edit by hand.\n"
    if cfg.is_placeholder:
        header += (
            f"# Values containing {PLACEHOLDER} (or all-zero ids/digests) are placeholders: the deploy pipeline\n"
            "# regenerates these files with the real image digest, identity and storage account.\n"
        )
    out = {}
    for name, docs in manifests(cfg).items():
        body = "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=1000) for d in docs)
        out[name] = header + "---\n" + body
    return out
