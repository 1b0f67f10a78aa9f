"""Parameters and naming variables of ``main.bicep``.

Every parameter has a description, a safe default where one exists, and
allowed values or bounds where Azure accepts only some values. Names are
derived from ``baseName``, ``environmentName`` and a hash of the resource
group, so a redeploy to the same group finds the same resources.
"""

from __future__ import annotations

from ..bicep_model import Expr, Param, Variable, interp

LOCATION = Param(
    "location", "string",
    "Azure region of every resource; the Flex Consumption plan must be offered there "
    "(az functionapp list-flexconsumption-locations).",
    default=Expr("resourceGroup().location"),
)
BASE_NAME = Param(
    "baseName", "string",
    "Short lowercase letters-and-digits prefix of every resource name.",
    default="medai", min_length=3, max_length=8,
)
ENVIRONMENT_NAME = Param(
    "environmentName", "string",
    "Deployment environment, used in names and tags.",
    default="prod", allowed=("dev", "test", "prod"),
)
TAGS = Param("tags", "object", "Extra tags merged into the tags of every resource.", default={})
ENTRA_TENANT_ID = Param(
    "entraTenantId", "string",
    "Entra ID tenant whose tokens the API accepts (MEDAI_ENTRA_TENANT_ID); defaults to the subscription's tenant.",
    default=Expr("subscription().tenantId"),
)
ENTRA_AUDIENCE = Param(
    "entraAudience", "string",
    "Accepted token audience(s), comma-separated: the API app registration's application ID URI and/or "
    "client id (MEDAI_ENTRA_AUDIENCE).",
    min_length=1,
)
LOG_RETENTION_DAYS = Param(
    "logRetentionDays", "int", "Days Log Analytics keeps logs and telemetry.", default=90, min_value=30, max_value=730,
)
STORAGE_SKU = Param(
    "storageSku", "string",
    "Storage redundancy: geo- and zone-redundant by default (medical results must survive a regional outage).",
    default="Standard_GZRS",
    allowed=("Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS", "Standard_RAGZRS"),
)
STORAGE_PUBLIC_NETWORK_ACCESS = Param(
    "storagePublicNetworkAccess", "string",
    "Public network access to the storage account. Keep Enabled unless private endpoints and Flex Consumption "
    "virtual network integration are added; access always requires Entra ID (shared keys are off).",
    default="Enabled", allowed=("Enabled", "Disabled"),
)
KEY_VAULT_PUBLIC_NETWORK_ACCESS = Param(
    "keyVaultPublicNetworkAccess", "string",
    "Public network access to Key Vault. Disabled requires private endpoints for the Function App and AKS.",
    default="Enabled", allowed=("Enabled", "Disabled"),
)
REGISTRY_SKU = Param(
    "registrySku", "string",
    "Container registry SKU. Premium adds the untagged-manifest retention policy and zone redundancy.",
    default="Premium", allowed=("Standard", "Premium"),
)
AKS_KUBERNETES_VERSION = Param(
    "aksKubernetesVersion", "string",
    "Kubernetes version (major.minor); empty uses the AKS default version of the region.",
    default="",
)
AKS_SKU_TIER = Param(
    "aksSkuTier", "string", "AKS control plane tier (Standard has the uptime SLA).",
    default="Standard", allowed=("Free", "Standard", "Premium"),
)
AKS_SYSTEM_VM_SIZE = Param(
    "aksSystemNodeVmSize", "string", "VM size of the system node pool (critical add-ons only).",
    default="Standard_D2ds_v5",
)
AKS_SYSTEM_NODE_COUNT = Param(
    "aksSystemNodeCount", "int", "Nodes in the system pool.", default=2, min_value=1, max_value=5,
)
AKS_USER_VM_SIZE = Param(
    "aksUserNodeVmSize", "string", "VM size of the user node pool that runs the service.",
    default="Standard_D4ds_v5",
)
AKS_USER_MIN = Param(
    "aksUserNodeMinCount", "int", "Minimum nodes of the user pool.", default=1, min_value=1, max_value=50
)
AKS_USER_MAX = Param(
    "aksUserNodeMaxCount", "int", "Maximum nodes of the user pool.", default=5, min_value=1, max_value=100
)
AKS_ADMIN_GROUPS = Param(
    "aksAdminGroupObjectIds", "array",
    "Entra ID group object ids that get cluster-admin through Entra ID integration.",
    default=[],
)
AKS_AUTHORIZED_IP_RANGES = Param(
    "aksAuthorizedIpRanges", "array",
    "CIDR ranges allowed to reach the Kubernetes API server; empty allows any address "
    "(authentication is still Entra ID only).",
    default=[],
)
K8S_NAMESPACE = Param(
    "k8sNamespace", "string", "Kubernetes namespace of the service (federated credential subject).",
    default="medai",
)
K8S_SERVICE_ACCOUNT = Param(
    "k8sServiceAccount", "string", "Kubernetes service account of the service (federated credential subject).",
    default="medai-inference",
)
FUNCTION_MAX_INSTANCES = Param(
    "functionMaximumInstanceCount", "int", "Most instances the Flex Consumption app scales out to.",
    default=100, min_value=40, max_value=1000,
)
FUNCTION_INSTANCE_MEMORY = Param(
    "functionInstanceMemoryMB", "int", "Memory of each Flex Consumption instance, in MB.",
    default=2048, allowed=(512, 2048, 4096),
)
PYTHON_THREADPOOL = Param(
    "pythonThreadpoolThreadCount", "int",
    "PYTHON_THREADPOOL_THREAD_COUNT of the Function App: threads running synchronous functions per worker.",
    default=4, min_value=1, max_value=32,
)

ALL_PARAMS = (
    LOCATION, BASE_NAME, ENVIRONMENT_NAME, TAGS, ENTRA_TENANT_ID, ENTRA_AUDIENCE, LOG_RETENTION_DAYS,
    STORAGE_SKU, STORAGE_PUBLIC_NETWORK_ACCESS, KEY_VAULT_PUBLIC_NETWORK_ACCESS, REGISTRY_SKU,
    AKS_KUBERNETES_VERSION, AKS_SKU_TIER, AKS_SYSTEM_VM_SIZE, AKS_SYSTEM_NODE_COUNT, AKS_USER_VM_SIZE,
    AKS_USER_MIN, AKS_USER_MAX, AKS_ADMIN_GROUPS, AKS_AUTHORIZED_IP_RANGES, K8S_NAMESPACE, K8S_SERVICE_ACCOUNT,
    FUNCTION_MAX_INSTANCES, FUNCTION_INSTANCE_MEMORY, PYTHON_THREADPOOL,
)

_b = BASE_NAME.ref
_e = ENVIRONMENT_NAME.ref

SUFFIX = Variable(
    "suffix", Expr("uniqueString(resourceGroup().id, baseName, environmentName)"),
    "Stable hash that makes globally unique names unique.",
)
_s = SUFFIX.ref
COMMON_TAGS = Variable(
    "commonTags", Expr("union({ workload: 'medai-flow', environment: environmentName }, tags)"),
    "Tags of every resource.",
)
LOG_ANALYTICS_NAME = Variable("logAnalyticsName", interp("log-", _b, "-", _e))
APP_INSIGHTS_NAME = Variable("appInsightsName", interp("appi-", _b, "-", _e))
STORAGE_NAME = Variable("storageAccountName", Expr(f"take(toLower({interp('st', _b, _s).text}), 24)"))
KEY_VAULT_NAME = Variable("keyVaultName", Expr(f"take({interp('kv', _b, _s).text}, 24)"))
REGISTRY_NAME = Variable("registryName", Expr(f"take({interp('cr', _b, _s).text}, 50)"))
AKS_NAME = Variable("aksName", interp("aks-", _b, "-", _e))
WORKLOAD_IDENTITY_NAME = Variable("workloadIdentityName", interp("id-", _b, "-", _e, "-workload"))
PLAN_NAME = Variable("functionPlanName", interp("plan-", _b, "-", _e))
FUNCTION_APP_NAME = Variable("functionAppName", interp("func-", _b, "-", _e, "-", _s))
SYSTEM_TOPIC_NAME = Variable("storageSystemTopicName", interp("evgt-", _b, "-", _e, "-storage"))

ALL_VARIABLES = (
    SUFFIX, COMMON_TAGS, LOG_ANALYTICS_NAME, APP_INSIGHTS_NAME, STORAGE_NAME, KEY_VAULT_NAME, REGISTRY_NAME,
    AKS_NAME, WORKLOAD_IDENTITY_NAME, PLAN_NAME, FUNCTION_APP_NAME, SYSTEM_TOPIC_NAME,
)
