"""AKS with Entra ID + Azure RBAC, workload identity, the KEDA add-on and a network policy.

Also the user-assigned identity the service's pods run as, federated with the
service's Kubernetes service account and with the KEDA operator (the add-on's
operator reads blob counts for the ``azure-blob`` scaler with that identity).
"""

from __future__ import annotations

from ..bicep_model import Expr, Resource, interp
from . import params as p
from .monitoring import LOG_ANALYTICS

AKS = Resource(
    "aks", "Microsoft.ContainerService/managedClusters", "2024-09-01",
    {
        "name": p.AKS_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "identity": {"type": "SystemAssigned"},
        "sku": {"name": "Base", "tier": p.AKS_SKU_TIER.ref},
        "properties": {
            "kubernetesVersion": Expr("empty(aksKubernetesVersion) ? null : aksKubernetesVersion"),
            "dnsPrefix": p.AKS_NAME.ref,
            "enableRBAC": True,
            "disableLocalAccounts": True,
            "aadProfile": {
                "managed": True,
                "enableAzureRBAC": True,
                "tenantID": Expr("subscription().tenantId"),
                "adminGroupObjectIDs": p.AKS_ADMIN_GROUPS.ref,
            },
            "oidcIssuerProfile": {"enabled": True},
            "securityProfile": {
                "workloadIdentity": {"enabled": True},
                "imageCleaner": {"enabled": True, "intervalHours": 168},
            },
            "workloadAutoScalerProfile": {"keda": {"enabled": True}},
            "apiServerAccessProfile": {"authorizedIPRanges": p.AKS_AUTHORIZED_IP_RANGES.ref},
            "networkProfile": {
                "networkPlugin": "azure",
                "networkPluginMode": "overlay",
                "networkDataplane": "cilium",
                "networkPolicy": "cilium",
                "loadBalancerSku": "standard",
                "outboundType": "loadBalancer",
            },
            "autoUpgradeProfile": {"upgradeChannel": "patch", "nodeOSUpgradeChannel": "NodeImage"},
            "addonProfiles": {
                "azurepolicy": {"enabled": True},
                "azureKeyvaultSecretsProvider": {
                    "enabled": True,
                    "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"},
                },
                "omsagent": {
                    "enabled": True,
                    "config": {"logAnalyticsWorkspaceResourceID": LOG_ANALYTICS.id, "useAADAuth": "true"},
                },
            },
            "agentPoolProfiles": [
                {
                    "name": "system",
                    "mode": "System",
                    "osType": "Linux",
                    "osSKU": "AzureLinux",
                    "type": "VirtualMachineScaleSets",
                    "vmSize": p.AKS_SYSTEM_VM_SIZE.ref,
                    "count": p.AKS_SYSTEM_NODE_COUNT.ref,
                    "maxPods": 110,
                    "osDiskType": "Ephemeral",
                    "osDiskSizeGB": 64,
                    "enableEncryptionAtHost": True,
                    "nodeTaints": ["CriticalAddonsOnly=true:NoSchedule"],
                    "upgradeSettings": {"maxSurge": "33%"},
                },
                {
                    "name": "apps",
                    "mode": "User",
                    "osType": "Linux",
                    "osSKU": "AzureLinux",
                    "type": "VirtualMachineScaleSets",
                    "vmSize": p.AKS_USER_VM_SIZE.ref,
                    "enableAutoScaling": True,
                    "count": p.AKS_USER_MIN.ref,
                    "minCount": p.AKS_USER_MIN.ref,
                    "maxCount": p.AKS_USER_MAX.ref,
                    "maxPods": 110,
                    "osDiskType": "Ephemeral",
                    "osDiskSizeGB": 64,
                    "enableEncryptionAtHost": True,
                    "upgradeSettings": {"maxSurge": "33%"},
                },
            ],
        },
    },
    description="Runs the same image as the Function App: the HTTP deployment (HPA) and the blob worker (KEDA).",
    skips=(
        ("CKV_AZURE_8", "The Kubernetes dashboard add-on no longer exists on supported AKS versions, so there is "
         "nothing to disable."),
        ("CKV_AZURE_172", "Rotation is on: add-on config values are strings in the AKS API "
         "(enableSecretRotation: 'true'); the check expects a boolean."),
    ),
)

CONTAINER_INSIGHTS_DCR = Resource(
    "containerInsightsDcr", "Microsoft.Insights/dataCollectionRules", "2022-06-01",
    {
        "name": interp("MSCI-", p.AKS_NAME.ref),
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "kind": "Linux",
        "properties": {
            "dataSources": {
                "extensions": [
                    {
                        "name": "ContainerInsightsExtension",
                        "extensionName": "ContainerInsights",
                        "streams": ["Microsoft-ContainerInsights-Group-Default"],
                        "extensionSettings": {
                            "dataCollectionSettings": {
                                "interval": "1m",
                                "namespaceFilteringMode": "Off",
                                "enableContainerLogV2": True,
                            }
                        },
                    }
                ]
            },
            "destinations": {"logAnalytics": [{"name": "ciworkspace", "workspaceResourceId": LOG_ANALYTICS.id}]},
            "dataFlows": [{"streams": ["Microsoft-ContainerInsights-Group-Default"], "destinations": ["ciworkspace"]}],
        },
    },
    description="Container Insights collection with Entra ID authentication (the workspace has local auth off).",
)

CONTAINER_INSIGHTS_DCRA = Resource(
    "containerInsightsDcra", "Microsoft.Insights/dataCollectionRuleAssociations", "2022-06-01",
    {
        "name": "ContainerInsightsExtension",
        "scope": AKS.ref,
        "properties": {
            "dataCollectionRuleId": CONTAINER_INSIGHTS_DCR.id,
            "description": "Container Insights for the MedAI Flow cluster.",
        },
    },
)

WORKLOAD_IDENTITY = Resource(
    "workloadIdentity", "Microsoft.ManagedIdentity/userAssignedIdentities", "2023-01-31",
    {"name": p.WORKLOAD_IDENTITY_NAME.ref, "location": p.LOCATION.ref, "tags": p.COMMON_TAGS.ref},
    description="Identity of the service's pods on AKS (storage, Key Vault, Application Insights) and of the "
    "KEDA scaler; no secret exists for it.",
)

_ISSUER = AKS.prop("properties.oidcIssuerProfile.issuerURL")

WORKLOAD_FEDERATION = Resource(
    "workloadFederation", "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials", "2023-01-31",
    {
        "parent": WORKLOAD_IDENTITY.ref,
        "name": "aks-service-account",
        "properties": {
            "issuer": _ISSUER,
            "subject": interp("system:serviceaccount:", p.K8S_NAMESPACE.ref, ":", p.K8S_SERVICE_ACCOUNT.ref),
            "audiences": ["api://AzureADTokenExchange"],
        },
    },
    description="Lets pods running as the service account obtain tokens for the workload identity.",
)

KEDA_FEDERATION = Resource(
    "kedaFederation", "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials", "2023-01-31",
    {
        "parent": WORKLOAD_IDENTITY.ref,
        "name": "aks-keda-operator",
        "properties": {
            "issuer": _ISSUER,
            "subject": "system:serviceaccount:kube-system:keda-operator",
            "audiences": ["api://AzureADTokenExchange"],
        },
        # Azure rejects concurrent writes of federated credentials on one identity.
        "dependsOn": [WORKLOAD_FEDERATION.ref],
    },
    description="Lets the KEDA add-on operator (TriggerAuthentication provider azure-workload) count input blobs.",
)

RESOURCES = (
    AKS, CONTAINER_INSIGHTS_DCR, CONTAINER_INSIGHTS_DCRA, WORKLOAD_IDENTITY, WORKLOAD_FEDERATION, KEDA_FEDERATION,
)
