"""Least-privilege role assignments, with ``guid()`` names so redeploys are stable.

The data-plane roles the service needs are the same for the Function App's
system-assigned identity and the AKS workload identity, so they are one module
(``modules/data-access.bicep``) used once per identity. The module reaches the
storage account, vault and Application Insights as ``existing`` resources.
"""

from __future__ import annotations

from .. import contract
from ..bicep_model import Expr, Module, Output, Param, Resource, Template, call
from ..roles import (
    ACR_PULL,
    KEY_VAULT_SECRETS_USER,
    MONITORING_METRICS_PUBLISHER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_QUEUE_DATA_CONTRIBUTOR,
    Role,
)
from .aks import AKS, WORKLOAD_IDENTITY
from .functionapp import FUNCTION_APP, SYSTEM_TOPIC
from .monitoring import APP_INSIGHTS
from .storage import STORAGE, container
from .vault_registry import KEY_VAULT, REGISTRY


def role_definition(symbol: str, role: Role) -> Resource:
    """An ``existing`` reference to a built-in role definition (subscription scope)."""
    return Resource(
        symbol, "Microsoft.Authorization/roleDefinitions", "2022-04-01",
        {"scope": Expr("subscription()"), "name": role.id},
        existing=True,
        description=f"Built-in role {role.name}.",
    )


def role_assignment(
    symbol: str, scope: Resource, definition: Resource, role: Role, principal_id: Expr, seed: Expr
) -> Resource:
    """Grant ``role`` on ``scope`` to a service principal.

    Args:
        symbol: Symbolic name.
        scope: Resource the role applies to (the narrowest that works).
        definition: The ``existing`` role definition.
        role: The role (its reason becomes the assignment description).
        principal_id: Object id of the identity (known only at deployment time).
        seed: A deploy-time constant identifying the principal, hashed into the name.
    """
    return Resource(
        symbol, "Microsoft.Authorization/roleAssignments", "2022-04-01",
        {
            "name": call("guid", scope.id, seed, role.id),
            "scope": scope.ref,
            "properties": {
                "roleDefinitionId": definition.id,
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
                "description": role.why,
            },
        },
    )


# ---- modules/data-access.bicep ---------------------------------------------------------------

_PRINCIPAL_ID = Param("principalId", "string", "Object id of the identity that gets the roles.")
_STORAGE_NAME = Param("storageAccountName", "string", "Storage account of the service.")
_VAULT_NAME = Param("keyVaultName", "string", "Key Vault holding the service's secrets.")
_APPI_NAME = Param("appInsightsName", "string", "Application Insights receiving the telemetry.")

_M_STORAGE = Resource(
    "storage", "Microsoft.Storage/storageAccounts", "2023-05-01", {"name": _STORAGE_NAME.ref}, existing=True
)
_M_VAULT = Resource("keyVault", "Microsoft.KeyVault/vaults", "2023-07-01", {"name": _VAULT_NAME.ref}, existing=True)
_M_APPI = Resource(
    "appInsights", "Microsoft.Insights/components", "2020-02-02", {"name": _APPI_NAME.ref}, existing=True
)
_M_DEFS = {
    role.id: role_definition(symbol, role)
    for symbol, role in (
        ("blobDataOwner", STORAGE_BLOB_DATA_OWNER),
        ("queueDataContributor", STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("secretsUser", KEY_VAULT_SECRETS_USER),
        ("metricsPublisher", MONITORING_METRICS_PUBLISHER),
    )
}


def _m_assign(symbol: str, scope: Resource, role: Role) -> Resource:
    return role_assignment(symbol, scope, _M_DEFS[role.id], role, _PRINCIPAL_ID.ref, _PRINCIPAL_ID.ref)


DATA_ACCESS_TEMPLATE = Template(
    description="Data-plane roles the MedAI Flow service identity needs: blobs and queues of its storage "
    "account, read access to Key Vault secrets, and publishing telemetry to Application Insights.",
    params=(_PRINCIPAL_ID, _STORAGE_NAME, _VAULT_NAME, _APPI_NAME),
    resources=(
        _M_STORAGE, _M_VAULT, _M_APPI, *_M_DEFS.values(),
        _m_assign("storageBlobAccess", _M_STORAGE, STORAGE_BLOB_DATA_OWNER),
        _m_assign("storageQueueAccess", _M_STORAGE, STORAGE_QUEUE_DATA_CONTRIBUTOR),
        _m_assign("keyVaultSecretsAccess", _M_VAULT, KEY_VAULT_SECRETS_USER),
        _m_assign("telemetryAccess", _M_APPI, MONITORING_METRICS_PUBLISHER),
    ),
    outputs=(Output("roleCount", "int", 4, "Role assignments made."),),
)
DATA_ACCESS_PATH = "modules/data-access.bicep"


def data_access(symbol: str, deployment_name: str, principal_id: Expr, why: str) -> Module:
    """Use the data-access module for one identity."""
    return Module(
        symbol, DATA_ACCESS_PATH, deployment_name,
        {
            "principalId": principal_id,
            "storageAccountName": STORAGE.name,
            "keyVaultName": KEY_VAULT.name,
            "appInsightsName": APP_INSIGHTS.name,
        },
        DATA_ACCESS_TEMPLATE,
        description=why,
    )


FUNCTION_APP_ACCESS = data_access(
    "functionAppAccess", "data-access-function-app", FUNCTION_APP.prop("identity.principalId"),
    "Roles of the Function App's system-assigned identity.",
)
WORKLOAD_ACCESS = data_access(
    "workloadAccess", "data-access-aks-workload", WORKLOAD_IDENTITY.prop("properties.principalId"),
    "Roles of the AKS workload identity (service pods and the KEDA blob scaler).",
)
MODULES = (FUNCTION_APP_ACCESS, WORKLOAD_ACCESS)

# ---- assignments made in main.bicep ----------------------------------------------------------

ACR_PULL_DEFINITION = role_definition("acrPullRole", ACR_PULL)
BLOB_CONTRIBUTOR_DEFINITION = role_definition("blobDataContributorRole", STORAGE_BLOB_DATA_CONTRIBUTOR)

KUBELET_ACR_PULL = role_assignment(
    "kubeletAcrPull", REGISTRY, ACR_PULL_DEFINITION, ACR_PULL,
    AKS.prop("properties.identityProfile.kubeletidentity.objectId"), Expr(f"{AKS.id.text}, 'kubelet'"),
)

_DEADLETTER = container(contract.EVENTGRID_DEADLETTER_CONTAINER)
EVENTGRID_DEADLETTER = role_assignment(
    "eventGridDeadLetterAccess", _DEADLETTER, BLOB_CONTRIBUTOR_DEFINITION, STORAGE_BLOB_DATA_CONTRIBUTOR,
    SYSTEM_TOPIC.prop("identity.principalId"), SYSTEM_TOPIC.id,
)

RESOURCES = (ACR_PULL_DEFINITION, BLOB_CONTRIBUTOR_DEFINITION, KUBELET_ACR_PULL, EVENTGRID_DEADLETTER)
