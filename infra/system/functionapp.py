"""The Function App on the Flex Consumption plan, and the storage account's Event Grid system topic.

The Event Grid *subscription* that feeds the blob trigger is not here: its
webhook needs the ``blobs_extension`` system key, which exists only after the
code is published. It lives in ``eventgrid.bicep`` (:mod:`infra.system.eventgrid`),
deployed after publish.
"""

from __future__ import annotations

from .. import contract
from ..bicep_model import Expr, Resource, Value, interp
from . import params as p
from .monitoring import app_insights_connection_string
from .storage import STORAGE, container
from .vault_registry import KEY_VAULT

PLAN = Resource(
    "functionPlan", "Microsoft.Web/serverfarms", "2024-04-01",
    {
        "name": p.PLAN_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "kind": "functionapp",
        "sku": {"name": "FC1", "tier": "FlexConsumption"},
        "properties": {"reserved": True},
    },
    description="Flex Consumption plan (Linux, scale to zero, one app per plan).",
    skips=(
        ("CKV_AZURE_225", "Zone redundancy of a Flex Consumption plan depends on region support; it is left off "
         "so the template deploys in every Flex region (AKS serves the same API as a second path)."),
    ),
)


def function_app_settings() -> list[dict[str, Value]]:
    """App settings of the Function App (Flex Consumption: no FUNCTIONS_WORKER_RUNTIME, it is in functionAppConfig)."""
    blob_endpoint = STORAGE.prop("properties.primaryEndpoints.blob")
    settings: dict[str, Value] = {
        "AzureWebJobsStorage__accountName": STORAGE.name,
        "AzureWebJobsStorage__blobServiceUri": blob_endpoint,
        "AzureWebJobsStorage__queueServiceUri": STORAGE.prop("properties.primaryEndpoints.queue"),
        "AzureWebJobsStorage__credential": "managedidentity",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": app_insights_connection_string(),
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        "PYTHON_THREADPOOL_THREAD_COUNT": Expr(f"string({p.PYTHON_THREADPOOL.name})"),
        "MEDAI_ENVIRONMENT": contract.ENVIRONMENT,
        "MEDAI_KEY_VAULT_URI": KEY_VAULT.prop("properties.vaultUri"),
        "MEDAI_AUTH_MODE": contract.AUTH_MODE,
        "MEDAI_ENTRA_TENANT_ID": p.ENTRA_TENANT_ID.ref,
        "MEDAI_ENTRA_AUDIENCE": p.ENTRA_AUDIENCE.ref,
        "MEDAI_BLOB_SOURCE": "EventGrid",
        "MEDAI_BLOB_INPUT_CONTAINER": contract.INPUT_CONTAINER,
        "MEDAI_BLOB_RESULTS_CONTAINER": contract.RESULTS_CONTAINER,
        "MEDAI_BLOB_ERRORS_CONTAINER": contract.ERRORS_CONTAINER,
        "MEDAI_BLOB_ARCHIVE_CONTAINER": contract.ARCHIVE_CONTAINER,
        "MEDAI_BLOB_POISON_QUEUE": contract.POISON_QUEUE,
        **_performance_preset(),
    }
    return [{"name": k, "value": v} for k, v in settings.items()]


def _performance_preset() -> dict[str, Value]:
    """flex-4gb on 4,096 MB instances, flex-2gb otherwise (contract.PERFORMANCE_PRESETS)."""
    small, large = contract.PERFORMANCE_PRESETS["flex-2gb"], contract.PERFORMANCE_PRESETS["flex-4gb"]
    settings: dict[str, Value] = {}
    for key in sorted(set(small) | set(large)):
        if small[key] == large[key]:
            settings[key] = small[key]
        else:
            settings[key] = Expr(f"{p.FUNCTION_INSTANCE_MEMORY.name} >= 4096 ? '{large[key]}' : '{small[key]}'")
    return settings


FUNCTION_APP = Resource(
    "functionApp", "Microsoft.Web/sites", "2024-04-01",
    {
        "name": p.FUNCTION_APP_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "kind": "functionapp,linux",
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "serverFarmId": PLAN.id,
            "httpsOnly": True,
            "clientCertEnabled": False,
            "publicNetworkAccess": "Enabled",
            "siteConfig": {
                "minTlsVersion": "1.2",
                "scmMinTlsVersion": "1.2",
                "ftpsState": "Disabled",
                "http20Enabled": True,
                "appSettings": function_app_settings(),
            },
            "functionAppConfig": {
                "deployment": {
                    "storage": {
                        "type": "blobContainer",
                        "value": interp(
                            STORAGE.prop("properties.primaryEndpoints.blob"), contract.DEPLOYMENT_CONTAINER
                        ),
                        "authentication": {"type": "SystemAssignedIdentity"},
                    }
                },
                "scaleAndConcurrency": {
                    "maximumInstanceCount": p.FUNCTION_MAX_INSTANCES.ref,
                    "instanceMemoryMB": p.FUNCTION_INSTANCE_MEMORY.ref,
                },
                "runtime": {"name": "python", "version": "3.11"},
            },
        },
        "dependsOn": [container(contract.DEPLOYMENT_CONTAINER).ref],
    },
    description="The service on Flex Consumption: HTTP API (http_app), blob trigger from Event Grid "
    "(process_blob), poison handler (blob_poison), warm-up. System-assigned identity for storage, "
    "Key Vault and Application Insights.",
    skips=(
        ("CKV_AZURE_222", "The inference API is a public HTTPS API by design; every inference route requires an "
         "Entra ID token or an API key (checked by the application)."),
        ("CKV_AZURE_17", "Callers authenticate with Entra ID bearer tokens or API keys; client certificates "
         "(mTLS) are not part of the API contract."),
        ("CKV_AZURE_212", "Flex Consumption scales per function from zero; instance counts are not a site "
         "setting there (always-ready instances can be added per function group)."),
        ("CKV_AZURE_213", "App Service health check is not a Flex Consumption feature; readiness is the "
         "/api/v1/health/ready route, probed by the pipeline smoke test and by Kubernetes on AKS."),
    ),
)


def _publishing_policy(symbol: str, name: str) -> Resource:
    return Resource(
        symbol, "Microsoft.Web/sites/basicPublishingCredentialsPolicies", "2024-04-01",
        {"parent": FUNCTION_APP.ref, "name": name, "properties": {"allow": False}},
        description=f"No basic-auth ({name.upper()}) publishing credentials: deployments use Entra ID.",
    )


FTP_POLICY = _publishing_policy("ftpPublishing", "ftp")
SCM_POLICY = _publishing_policy("scmPublishing", "scm")

SYSTEM_TOPIC = Resource(
    "storageSystemTopic", "Microsoft.EventGrid/systemTopics", "2022-06-15",
    {
        "name": p.SYSTEM_TOPIC_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "identity": {"type": "SystemAssigned"},
        "properties": {"source": STORAGE.id, "topicType": "Microsoft.Storage.StorageAccounts"},
    },
    description="Storage events for the Event Grid blob trigger; the subscription is eventgrid.bicep "
    "(after publish). Its identity dead-letters undeliverable events.",
)

RESOURCES = (PLAN, FUNCTION_APP, FTP_POLICY, SCM_POLICY, SYSTEM_TOPIC)
