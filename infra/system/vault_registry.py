"""Key Vault (the service's secrets) and the container registry (the service image)."""

from __future__ import annotations

from ..bicep_model import Expr, Resource
from . import params as p
from .monitoring import diagnostics

KEY_VAULT = Resource(
    "keyVault", "Microsoft.KeyVault/vaults", "2023-07-01",
    {
        "name": p.KEY_VAULT_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "properties": {
            "tenantId": Expr("subscription().tenantId"),
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": True,
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": 90,
            "enablePurgeProtection": True,
            "enabledForDeployment": False,
            "enabledForDiskEncryption": False,
            "enabledForTemplateDeployment": False,
            "publicNetworkAccess": p.KEY_VAULT_PUBLIC_NETWORK_ACCESS.ref,
            "networkAcls": {
                "bypass": "AzureServices",
                "defaultAction": Expr("keyVaultPublicNetworkAccess == 'Disabled' ? 'Deny' : 'Allow'"),
            },
        },
    },
    description="API keys and the PHI hashing key, read by the service with its managed identity (Azure RBAC). "
    "Secret values are set by an operator, never by this template.",
    skips=(
        ("CKV_AZURE_109", "The firewall follows keyVaultPublicNetworkAccess: Deny when Disabled; Allow by default "
         "because Flex Consumption without VNet integration reaches the vault publicly (RBAC still applies)."),
        ("CKV_AZURE_189", "Public network access is the parameter keyVaultPublicNetworkAccess; set Disabled "
         "once private endpoints exist for the Function App and AKS."),
    ),
)

KEY_VAULT_DIAGNOSTICS = diagnostics("keyVaultDiagnostics", KEY_VAULT, ("allLogs",))

REGISTRY = Resource(
    "registry", "Microsoft.ContainerRegistry/registries", "2023-07-01",
    {
        "name": p.REGISTRY_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "sku": {"name": p.REGISTRY_SKU.ref},
        "properties": {
            "adminUserEnabled": False,
            "anonymousPullEnabled": False,
            "dataEndpointEnabled": False,
            "publicNetworkAccess": "Enabled",
            "networkRuleBypassOptions": "AzureServices",
            "zoneRedundancy": "Disabled",
            "policies": Expr(
                "registrySku == 'Premium' ? { retentionPolicy: { status: 'enabled', days: 30 } } : {}"
            ),
        },
    },
    description="The service image, pulled by AKS with the kubelet identity (AcrPull); no admin user, "
    "no anonymous pull.",
    skips=(
        ("CKV_AZURE_139", "The GitHub-hosted deploy runner pushes images over the public endpoint; pushes and "
         "pulls need Entra ID (admin user and anonymous pull off)."),
        ("CKV_AZURE_166", "Quarantine needs a scanner to release each image; the pipeline scans (Trivy) and "
         "attests images before push, and AKS pulls by digest."),
        ("CKV_AZURE_233", "Zone redundancy can only be chosen at creation and only in regions with availability "
         "zones; it is not forced so the template deploys in any Flex Consumption region."),
    ),
)

REGISTRY_DIAGNOSTICS = diagnostics("registryDiagnostics", REGISTRY, ("allLogs",))

RESOURCES = (KEY_VAULT, KEY_VAULT_DIAGNOSTICS, REGISTRY, REGISTRY_DIAGNOSTICS)
