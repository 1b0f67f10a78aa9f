"""Secure defaults asserted on the emitted Bicep, parsed back by pycep-parser.

Every assertion reads ``infra/bicep/*.bicep`` as text through an independent
parser, so it checks what an operator would deploy, not the Python that wrote it.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.requirement("REQ-SEC-012")

STORAGE = "Microsoft.Storage/storageAccounts"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"

# Built-in role ids (Azure built-in roles reference), typed here independently of infra/roles.py.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
KV_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ACR_PULL = "7f951dff-4691-48f8-8ee2-c9c67fa9d4e5"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def one(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, items
    return items[0]


def test_every_resource_pins_a_dated_api_version(main_bicep, data_access_bicep, eventgrid_bicep):
    for parsed in (main_bicep, data_access_bicep, eventgrid_bicep):
        for symbol, res in parsed["resources"].items():
            version = res["api_version"]
            assert len(version) >= 10 and version[:4].isdigit(), (symbol, version)


def test_parameters_have_descriptions_and_secure_ones_have_no_default(main_bicep, eventgrid_bicep):
    for parsed in (main_bicep, eventgrid_bicep):
        for name, param in parsed["parameters"].items():
            kinds = {d["type"] for d in param["decorators"]}
            assert "description" in kinds, name
            if "secure" in kinds:
                assert param["default"] is None, name


def test_allowed_values_are_declared(main_bicep):
    params = main_bicep["parameters"]
    allowed = {d["type"]: d.get("argument") for d in params["environmentName"]["decorators"]}
    assert allowed["allowed"] == ["dev", "test", "prod"]
    memory = {d["type"]: d.get("argument") for d in params["functionInstanceMemoryMB"]["decorators"]}
    assert memory["allowed"] == [512, 2048, 4096]


def test_log_analytics_and_app_insights_disable_local_auth(main_bicep, of_type):
    law = one(of_type(main_bicep, "Microsoft.OperationalInsights/workspaces"))
    assert law["properties"]["features"]["disableLocalAuth"] is True
    appi = one(of_type(main_bicep, "Microsoft.Insights/components"))
    assert appi["properties"]["DisableLocalAuth"] is True
    assert appi["properties"]["WorkspaceResourceId"]  # workspace-based


def test_storage_account_secure_defaults(main_bicep, of_type):
    props = one(of_type(main_bicep, STORAGE))["properties"]
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    assert props["allowCrossTenantReplication"] is False
    assert props["encryption"]["requireInfrastructureEncryption"] is True


@pytest.mark.requirement("REQ-FUNC-027")
def test_storage_containers_and_poison_queue(main_bicep, of_type):
    containers = {c["name"]: c for c in of_type(main_bicep, f"{STORAGE}/blobServices/containers")}
    for name in ("inference-input", "inference-results", "inference-errors", "inference-archive"):
        assert name in containers, name
    for c in containers.values():
        assert c["properties"]["publicAccess"] == "None"
    queues = [q["name"] for q in of_type(main_bicep, f"{STORAGE}/queueServices/queues")]
    assert queues == ["webjobs-blobtrigger-poison"]


def test_key_vault_secure_defaults(main_bicep, of_type):
    props = one(of_type(main_bicep, "Microsoft.KeyVault/vaults"))["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["enabledForDeployment"] is False
    assert props["enabledForDiskEncryption"] is False
    assert props["enabledForTemplateDeployment"] is False
    assert props["publicNetworkAccess"] == "keyVaultPublicNetworkAccess"  # a parameter...
    param = main_bicep["parameters"]["keyVaultPublicNetworkAccess"]
    allowed = {d["type"]: d.get("argument") for d in param["decorators"]}["allowed"]
    assert sorted(allowed) == ["Disabled", "Enabled"]  # ...that can turn it off


def test_no_secret_values_in_bicep(main_bicep, of_type):
    assert not of_type(main_bicep, "Microsoft.KeyVault/vaults/secrets")
    text = str(main_bicep)
    for forbidden in ("listKeys", "AccountKey=", "connectionString", "SharedAccessSignature"):
        assert forbidden not in text, forbidden


def test_container_registry_admin_and_anonymous_pull_off(main_bicep, of_type):
    props = one(of_type(main_bicep, "Microsoft.ContainerRegistry/registries"))["properties"]
    assert props["adminUserEnabled"] is False
    assert props["anonymousPullEnabled"] is False


def test_aks_identity_keda_rbac_and_network_policy(main_bicep, of_type):
    aks = one(of_type(main_bicep, "Microsoft.ContainerService/managedClusters"))
    props = aks["properties"]
    assert props["oidcIssuerProfile"]["enabled"] is True
    assert props["securityProfile"]["workloadIdentity"]["enabled"] is True
    assert props["workloadAutoScalerProfile"]["keda"]["enabled"] is True
    assert props["aadProfile"]["managed"] is True
    assert props["aadProfile"]["enableAzureRBAC"] is True
    assert props["disableLocalAccounts"] is True
    assert props["enableRBAC"] is True
    assert props["networkProfile"]["networkPolicy"] in ("azure", "calico", "cilium")
    for pool in props["agentPoolProfiles"]:
        assert pool["enableEncryptionAtHost"] is True
        assert pool["osDiskType"] == "Ephemeral"


def _role_of(assignment: dict[str, Any], parsed: dict[str, Any]) -> str:
    """The role id of an assignment whose roleDefinitionId is ``<existing roleDefinition>.id``."""
    operands = assignment["properties"]["roleDefinitionId"]["operator"]["operands"]
    definition = parsed["resources"][operands["operand_1"]]
    assert definition["existing"] is True and definition["type"] == "Microsoft.Authorization/roleDefinitions"
    return definition["config"]["name"]


def _guid_name(assignment: dict[str, Any]) -> bool:
    name = assignment["name"]
    return isinstance(name, dict) and name.get("function", {}).get("type") == "guid"


def test_kubelet_gets_acr_pull_on_the_registry(main_bicep, of_type):
    assignments = of_type(main_bicep, ROLE_ASSIGNMENT)
    kubelet = [a for a in assignments if "kubeletidentity" in str(a["properties"]["principalId"])]
    assert len(kubelet) == 1
    assert _role_of(kubelet[0], main_bicep) == ACR_PULL
    assert kubelet[0]["scope"] == "registry"
    assert _guid_name(kubelet[0])


def test_data_access_module_grants_least_privilege_roles(data_access_bicep, of_type):
    assignments = of_type(data_access_bicep, ROLE_ASSIGNMENT)
    granted = {(_role_of(a, data_access_bicep), a["scope"]) for a in assignments}
    assert granted == {
        (BLOB_DATA_OWNER, "storage"),
        (QUEUE_DATA_CONTRIBUTOR, "storage"),
        (KV_SECRETS_USER, "keyVault"),
        (METRICS_PUBLISHER, "appInsights"),
    }
    for a in assignments:
        assert _guid_name(a), a["_symbol"]
        assert a["properties"]["principalType"] == "ServicePrincipal"
    existing = {r["type"] for r in data_access_bicep["resources"].values() if r["existing"]}
    assert {"Microsoft.Storage/storageAccounts", "Microsoft.KeyVault/vaults"} <= existing


def test_both_service_identities_use_the_data_access_module(main_bicep):
    modules = main_bicep["modules"]
    assert {m["detail"]["path"] for m in modules.values()} == {"modules/data-access.bicep"}
    principals = sorted(str(m["config"]["params"]["principalId"]) for m in modules.values())
    assert any("functionApp" in p and "identity" in p for p in principals)
    assert any("workloadIdentity" in p for p in principals)


def test_workload_identity_federated_with_service_account_and_keda(main_bicep, of_type):
    creds = of_type(main_bicep, "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials")
    subjects = [str(c["properties"]["subject"]) for c in creds]
    assert any("system:serviceaccount:${k8sNamespace}:${k8sServiceAccount}" in s for s in subjects), subjects
    assert "system:serviceaccount:kube-system:keda-operator" in subjects
    for c in creds:
        assert c["properties"]["audiences"] == ["api://AzureADTokenExchange"]
        assert "oidcIssuerProfile" in str(c["properties"]["issuer"])


def _settings(site: dict[str, Any]) -> dict[str, Any]:
    return {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}


def test_function_app_flex_consumption_secure_defaults(main_bicep, of_type):
    plan = one(of_type(main_bicep, "Microsoft.Web/serverfarms"))
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = one(of_type(main_bicep, "Microsoft.Web/sites"))
    props = site["properties"]
    assert site["identity"]["type"] == "SystemAssigned"
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    runtime = props["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}
    deployment = props["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "SystemAssignedIdentity"
    policies = {p["name"]: p["properties"]["allow"]
                for p in of_type(main_bicep, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert policies == {"ftp": False, "scm": False}


@pytest.mark.requirement("REQ-FUNC-027")
def test_function_app_settings_identity_based_and_complete(main_bicep, of_type):
    settings = _settings(one(of_type(main_bicep, "Microsoft.Web/sites")))
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for key in ("AzureWebJobsStorage__accountName", "AzureWebJobsStorage__blobServiceUri",
                "AzureWebJobsStorage__queueServiceUri"):
        assert key in settings
    assert "AzureWebJobsStorage" not in settings  # no connection string
    assert not any("connectionstring" in k.lower() and "APPLICATIONINSIGHTS" not in k for k in settings)
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
    assert settings["MEDAI_ENVIRONMENT"] == "production"
    assert settings["MEDAI_AUTH_MODE"] == "entra,api-key"
    assert settings["MEDAI_BLOB_SOURCE"] == "EventGrid"
    assert "vaultUri" in str(settings["MEDAI_KEY_VAULT_URI"])
    assert settings["MEDAI_ENTRA_TENANT_ID"] == "entraTenantId"
    assert settings["MEDAI_ENTRA_AUDIENCE"] == "entraAudience"
    assert settings["MEDAI_BLOB_INPUT_CONTAINER"] == "inference-input"
    assert settings["MEDAI_BLOB_RESULTS_CONTAINER"] == "inference-results"
    assert settings["MEDAI_BLOB_ERRORS_CONTAINER"] == "inference-errors"
    assert settings["MEDAI_BLOB_ARCHIVE_CONTAINER"] == "inference-archive"
    assert "PYTHON_THREADPOOL_THREAD_COUNT" in settings
    # Settings the Flex Consumption plan rejects or ignores must not be set.
    for deprecated in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                       "FUNCTIONS_WORKER_PROCESS_COUNT", "WEBSITE_CONTENTSHARE"):
        assert deprecated not in settings


@pytest.mark.requirement("REQ-FUNC-027")
def test_event_grid_system_topic_in_main_subscription_after_publish(main_bicep, eventgrid_bicep, of_type):
    topic = one(of_type(main_bicep, "Microsoft.EventGrid/systemTopics"))
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert not of_type(main_bicep, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    sub = one(of_type(eventgrid_bicep, "Microsoft.EventGrid/systemTopics/eventSubscriptions"))
    props = sub["properties"]
    assert props["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert props["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/inference-input/blobs/"
    url = str(props["destination"]["properties"]["endpointUrl"])
    assert props["destination"]["endpointType"] == "WebHook"
    assert "/runtime/webhooks/blobs?functionName=Host.Functions.process_blob&code=" in url
    assert "systemKeys.blobs_extension" in url
    assert props["deadLetterWithResourceIdentity"]["identity"]["type"] == "SystemAssigned"
    host = one(of_type(eventgrid_bicep, "Microsoft.Web/sites/host"))
    assert host["_existing"] is True


@pytest.mark.requirement("REQ-FUNC-027")
@pytest.mark.parametrize(
    "name",
    [
        "registryLoginServer", "registryName", "aksClusterName", "functionAppName", "functionAppHostName",
        "keyVaultUri", "keyVaultName", "storageAccountName", "workloadIdentityClientId", "resourceGroupName",
    ],
)
def test_pipeline_outputs(main_bicep, name):
    assert main_bicep["outputs"][name]["type"] == "string"


def test_outputs_never_expose_keys(main_bicep):
    for name, output in main_bicep["outputs"].items():
        assert "listKeys" not in str(output["value"]), name
