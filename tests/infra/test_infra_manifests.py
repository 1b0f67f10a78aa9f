"""The AKS manifests: schema-valid, KEDA-valid, secure pods, workload identity, one image two roles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

from infra.__main__ import main
from infra.build import K8S_DIR

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.requirement("REQ-SEC-013")

CORE_KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "NetworkPolicy", "Deployment", "Service",
              "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def _docs(root: Path = K8S_DIR) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(root.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _by_kind(kind: str, root: Path = K8S_DIR) -> list[dict[str, Any]]:
    return [d for d in _docs(root) if d["kind"] == kind]


def _deployment(name: str, root: Path = K8S_DIR) -> dict[str, Any]:
    return next(d for d in _by_kind("Deployment", root) if d["metadata"]["name"] == name)


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_core_kinds_validate_strictly_with_kubernetes_validate():
    files = sorted(str(p) for p in K8S_DIR.glob("*.yaml"))
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *files], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = proc.stdout.count(" passed for resource ")
    assert passed == sum(1 for d in _docs() if d["kind"] in CORE_KINDS)


KEDA_MODELS = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}
"""The kinds kubernetes-validate has no schema for, validated with cloudcoil-models-keda instead."""


def test_only_the_keda_kinds_lack_a_kubernetes_validate_schema():
    files = sorted(str(p) for p in K8S_DIR.glob("*.yaml"))
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *files], capture_output=True, text=True, check=False
    )
    unvalidated = set(re.findall(r"Couldn't find schema for kind (\w+) with api version", proc.stdout + proc.stderr))
    assert unvalidated == {d["kind"] for d in _docs()} - CORE_KINDS == set(KEDA_MODELS)
    # infra/README.md tells the operator to expect exactly these warnings from `make infra-check`.
    checks = (REPO / "infra" / "README.md").read_text(encoding="utf-8").split("## Checks", 1)[1]
    for kind in unvalidated:
        assert f"Couldn't find schema for kind {kind}" in checks or f"same for `{kind}`" in checks, kind
    assert "cloudcoil-models-keda" in checks


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path):
    bad = _deployment("medai-http")
    bad["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0


@pytest.mark.parametrize("kind, model", sorted(KEDA_MODELS.items()))
def test_keda_objects_validate_against_the_keda_schema(kind, model):
    docs = _by_kind(kind)
    assert len(docs) == 1
    parsed = model.model_validate(docs[0])
    # Round-trip: an unknown or misspelt field would be dropped by the model and show up here.
    assert parsed.model_dump(by_alias=True, exclude_none=True) == docs[0]


@pytest.mark.requirement("REQ-FUNC-027")
def test_scaled_object_counts_input_blobs_with_workload_identity():
    so = _by_kind("ScaledObject")[0]["spec"]
    assert so["scaleTargetRef"]["name"] == "medai-blob-worker"
    assert so["minReplicaCount"] == 0
    trigger = so["triggers"][0]
    assert trigger["type"] == "azure-blob"
    meta = trigger["metadata"]
    assert meta["blobContainerName"] == "inference-input"
    assert meta["accountName"] and int(meta["blobCount"]) > 0
    assert not {"connection", "connectionFromEnv"} & set(meta)
    auth = _by_kind("TriggerAuthentication")[0]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"] == {"podIdentity": {"provider": "azure-workload",
                                            "identityId": "00000000-0000-0000-0000-000000000000"}}


def test_service_account_and_pods_use_workload_identity():
    sa = _by_kind("ServiceAccount")[0]
    assert "azure.workload.identity/client-id" in sa["metadata"]["annotations"]
    for name in ("medai-http", "medai-blob-worker"):
        pod = _deployment(name)["spec"]["template"]
        assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
        assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.parametrize("name", ["medai-http", "medai-blob-worker"])
def test_pods_are_hardened(name):
    spec = _deployment(name)["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    container = spec["containers"][0]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 10000
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "@sha256:" in container["image"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # nosec B108  # asserting the emptyDir mount
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    assert {m["name"] for m in container["volumeMounts"]} <= empty_dirs
    assert container["ports"][0]["containerPort"] == 8080


@pytest.mark.requirement("REQ-FUNC-027")
def test_http_deployment_probes_the_health_routes_and_disables_blob_functions():
    http = _deployment("medai-http")
    container = http["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"
    assert _env(http) == {"AzureWebJobs.process_blob.Disabled": "true", "AzureWebJobs.blob_poison.Disabled": "true"}
    assert "replicas" not in http["spec"]  # owned by the HPA


@pytest.mark.requirement("REQ-FUNC-027")
def test_worker_disables_http_and_both_share_one_image_and_config():
    worker = _deployment("medai-blob-worker")
    http = _deployment("medai-http")
    assert _env(worker) == {"AzureWebJobs.http_app.Disabled": "true"}
    assert "replicas" not in worker["spec"]  # owned by KEDA
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in (http, worker)}
    assert len(images) == 1
    for d in (http, worker):
        assert d["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"configMapRef": {"name": "medai-config"}}]


@pytest.mark.requirement("REQ-FUNC-027")
def test_config_uses_identity_based_storage_and_polling_blob_source():
    data = _by_kind("ConfigMap")[0]["data"]
    assert data["AzureWebJobsStorage__credential"] == "managedidentity"
    assert data["AzureWebJobsStorage__clientId"] == "00000000-0000-0000-0000-000000000000"
    assert data["AzureWebJobsStorage__blobServiceUri"].startswith("https://")
    assert "AzureWebJobsStorage" not in data
    assert data["MEDAI_BLOB_SOURCE"] == "LogsAndContainerScan"
    assert data["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].startswith("Authorization=AAD;ClientId=")
    assert not any("key" in v.lower() and "AccountKey" in v for v in data.values())


@pytest.mark.requirement("REQ-FUNC-027")
def test_hpa_pdbs_and_service():
    hpa = _by_kind("HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "medai-http" and hpa["minReplicas"] >= 2
    targets = {p["metadata"]["name"] for p in _by_kind("PodDisruptionBudget")}
    assert targets == {"medai-http", "medai-blob-worker"}
    svc = _by_kind("Service")[0]["spec"]
    assert svc["type"] == "ClusterIP" and svc["ports"][0]["targetPort"] == "http"


def test_network_policies_default_deny_then_allow_only_what_is_needed():
    policies = {p["metadata"]["name"]: p["spec"] for p in _by_kind("NetworkPolicy")}
    deny = policies["default-deny-all"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    egress = policies["allow-dns-and-azure-egress"]["egress"]
    ports = sorted((p["protocol"], p["port"]) for rule in egress for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]
    ingress = policies["allow-http-ingress"]
    assert ingress["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "http"
    assert ingress["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]


@pytest.mark.requirement("REQ-REG-003")
def test_committed_manifests_are_marked_as_placeholders():
    for path in K8S_DIR.glob("*.yaml"):
        assert "placeholders" in path.read_text().split("---")[0], path


@pytest.mark.requirement("REQ-REG-005")
def test_cli_values_replace_every_placeholder(tmp_path):
    digest = "sha256:" + "ab" * 32
    args = [
        "k8s", "--out", str(tmp_path), "--image", f"crmedai.azurecr.io/medai-flow@{digest}",
        "--workload-client-id", "11111111-2222-3333-4444-555555555555", "--storage-account", "stmedaiabc",
        "--namespace", "medai-prod", "--key-vault-uri", "https://kvmedaiabc.vault.azure.net/",
        "--entra-tenant-id", "99999999-8888-7777-6666-555555555555", "--entra-audience", "api://medai",
        "--appinsights-connection-string", "InstrumentationKey=abc;IngestionEndpoint=https://x/",
    ]
    assert main(args) == 0
    text = "".join(p.read_text() for p in sorted(tmp_path.glob("*.yaml")))
    assert "placeholder" not in text.lower()
    assert "0000-0000" not in text
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in _docs(tmp_path)} == {"medai-prod"}
    so = _by_kind("ScaledObject", tmp_path)[0]
    assert so["spec"]["triggers"][0]["metadata"]["accountName"] == "stmedaiabc"
    assert _by_kind("TriggerAuthentication", tmp_path)[0]["spec"]["podIdentity"]["identityId"].startswith("1111")
