"""``main.bicep``: everything provisioned before any code or image is published."""

from __future__ import annotations

from ..bicep_model import Expr, Output, Template
from . import access, aks, functionapp, monitoring, storage, vault_registry
from . import params as p

OUTPUTS = (
    Output("resourceGroupName", "string", Expr("resourceGroup().name"), "Resource group of the deployment."),
    Output("registryName", "string", vault_registry.REGISTRY.name, "Container registry name (az acr login -n)."),
    Output(
        "registryLoginServer", "string", vault_registry.REGISTRY.prop("properties.loginServer"),
        "Registry login server, the image reference prefix.",
    ),
    Output("aksClusterName", "string", aks.AKS.name, "AKS cluster name (az aks get-credentials)."),
    Output(
        "aksOidcIssuerUrl", "string", aks.AKS.prop("properties.oidcIssuerProfile.issuerURL"),
        "OIDC issuer of the cluster (workload identity federation).",
    ),
    Output("functionAppName", "string", functionapp.FUNCTION_APP.name, "Function App name (publish target)."),
    Output(
        "functionAppHostName", "string", functionapp.FUNCTION_APP.prop("properties.defaultHostName"),
        "Function App host name (smoke tests: https://<host>/api/v1/health/ready).",
    ),
    Output("keyVaultName", "string", vault_registry.KEY_VAULT.name, "Key Vault name (az keyvault secret set)."),
    Output(
        "keyVaultUri", "string", vault_registry.KEY_VAULT.prop("properties.vaultUri"),
        "Key Vault URI (MEDAI_KEY_VAULT_URI).",
    ),
    Output("storageAccountName", "string", storage.STORAGE.name, "Storage account name."),
    Output(
        "storageSystemTopicName", "string", functionapp.SYSTEM_TOPIC.name,
        "Event Grid system topic of the storage account (eventgrid.bicep parameter).",
    ),
    Output(
        "workloadIdentityClientId", "string", aks.WORKLOAD_IDENTITY.prop("properties.clientId"),
        "Client id of the AKS workload identity (service account annotation, TriggerAuthentication).",
    ),
    Output("entraTenantId", "string", p.ENTRA_TENANT_ID.ref, "Tenant whose tokens the API accepts."),
    Output("entraAudience", "string", p.ENTRA_AUDIENCE.ref, "Token audience(s) the API accepts."),
    Output(
        "appInsightsConnectionString", "string", monitoring.app_insights_connection_string(),
        "Application Insights connection string (ingestion still requires Entra ID).",
    ),
    Output("k8sNamespace", "string", p.K8S_NAMESPACE.ref, "Namespace the manifests must use."),
    Output("k8sServiceAccount", "string", p.K8S_SERVICE_ACCOUNT.ref, "Service account the manifests must use."),
)

MAIN_TEMPLATE = Template(
    description="MedAI Flow: monitoring, storage, Key Vault, container registry, AKS with KEDA and workload "
    "identity, and the Function App on Flex Consumption, with secure defaults.",
    header="Deploy: az deployment group create -g <rg> -f infra/bicep/main.bicep -p @infra/bicep/main.parameters.json\n"
    "Then publish the code and deploy eventgrid.bicep (see infra/README.md).",
    params=p.ALL_PARAMS,
    variables=p.ALL_VARIABLES,
    resources=(
        monitoring.LOG_ANALYTICS,
        monitoring.APP_INSIGHTS,
        *storage.RESOURCES,
        *vault_registry.RESOURCES,
        *aks.RESOURCES,
        *functionapp.RESOURCES,
        *access.RESOURCES,
    ),
    modules=access.MODULES,
    outputs=OUTPUTS,
)

PARAMETER_VALUES: dict[str, object] = {
    "baseName": "medai",
    "environmentName": "prod",
    "entraAudience": "api://medai-flow",
    "storageSku": "Standard_GZRS",
    "keyVaultPublicNetworkAccess": "Enabled",
    "aksAdminGroupObjectIds": [],
    "aksAuthorizedIpRanges": [],
}
"""Values pinned in ``main.parameters.json``; override any of them with ``-p name=value``."""
