"""The storage account: host storage, blob path containers, poison queue, deployment package."""

from __future__ import annotations

from .. import contract
from ..bicep_model import Resource
from . import params as p
from .monitoring import diagnostics

STORAGE = Resource(
    "storage", "Microsoft.Storage/storageAccounts", "2023-05-01",
    {
        "name": p.STORAGE_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "kind": "StorageV2",
        "sku": {"name": p.STORAGE_SKU.ref},
        "properties": {
            "accessTier": "Hot",
            "allowBlobPublicAccess": False,
            "allowSharedKeyAccess": False,
            "allowCrossTenantReplication": False,
            "defaultToOAuthAuthentication": True,
            "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": True,
            "publicNetworkAccess": p.STORAGE_PUBLIC_NETWORK_ACCESS.ref,
            "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow"},
            "encryption": {
                "keySource": "Microsoft.Storage",
                "requireInfrastructureEncryption": True,
                "services": {
                    "blob": {"enabled": True, "keyType": "Account"},
                    "file": {"enabled": True, "keyType": "Account"},
                    "queue": {"enabled": True, "keyType": "Account"},
                    "table": {"enabled": True, "keyType": "Account"},
                },
            },
        },
    },
    description="Functions host storage, the blob path's containers, the poison queue and the "
    "Flex Consumption deployment package. Entra ID only: no shared keys, no anonymous access.",
    skips=(
        ("CKV_AZURE_35", "Flex Consumption without VNet integration and AKS without private endpoints reach "
         "storage over its public endpoint; every request needs Entra ID (shared keys off)."),
        ("CKV_AZURE_59", "Public network access is the parameter storagePublicNetworkAccess (default Enabled for "
         "the same reason as CKV_AZURE_35); anonymous blob access is off."),
        ("CKV_AZURE_43", "The name is computed (take(toLower('st<baseName><hash>'), 24)), which the scanner cannot "
         "evaluate; it is lowercase alphanumeric and at most 24 characters."),
    ),
)

BLOB_SERVICE = Resource(
    "blobService", "Microsoft.Storage/storageAccounts/blobServices", "2023-05-01",
    {
        "parent": STORAGE.ref,
        "name": "default",
        "properties": {
            "deleteRetentionPolicy": {"enabled": True, "days": 7},
            "containerDeleteRetentionPolicy": {"enabled": True, "days": 7},
        },
    },
    description="Soft delete keeps deleted or overwritten blobs (images, results) recoverable for 7 days.",
)

_CONTAINER_PURPOSE = {
    contract.INPUT_CONTAINER: "Images dropped for batch inference (blob trigger source).",
    contract.RESULTS_CONTAINER: "Result JSON, one per input.",
    contract.ERRORS_CONTAINER: "Error records (problem JSON), one per failed input.",
    contract.ARCHIVE_CONTAINER: "Inputs moved here once processed, so the input container drains.",
    contract.DEPLOYMENT_CONTAINER: "Flex Consumption deployment package of the Function App.",
    contract.EVENTGRID_DEADLETTER_CONTAINER: "BlobCreated events Event Grid could not deliver.",
}


def _container_symbol(name: str) -> str:
    return "container" + "".join(part.capitalize() for part in name.split("-"))


CONTAINERS = tuple(
    Resource(
        _container_symbol(name), "Microsoft.Storage/storageAccounts/blobServices/containers", "2023-05-01",
        {"parent": BLOB_SERVICE.ref, "name": name, "properties": {"publicAccess": "None"}},
        description=purpose,
    )
    for name, purpose in _CONTAINER_PURPOSE.items()
)


def container(name: str) -> Resource:
    """The container resource with this name."""
    return next(c for c in CONTAINERS if c.body["name"] == name)


QUEUE_SERVICE = Resource(
    "queueService", "Microsoft.Storage/storageAccounts/queueServices", "2023-05-01",
    {"parent": STORAGE.ref, "name": "default"},
)

POISON_QUEUE = Resource(
    "poisonQueue", "Microsoft.Storage/storageAccounts/queueServices/queues", "2023-05-01",
    {"parent": QUEUE_SERVICE.ref, "name": contract.POISON_QUEUE},
    description="Blobs the trigger gave up on; the blob_poison function turns each into an error record.",
)

BLOB_DIAGNOSTICS = diagnostics("blobDiagnostics", BLOB_SERVICE, ("StorageRead", "StorageWrite", "StorageDelete"))
QUEUE_DIAGNOSTICS = diagnostics("queueDiagnostics", QUEUE_SERVICE, ("StorageRead", "StorageWrite", "StorageDelete"))

RESOURCES = (STORAGE, BLOB_SERVICE, *CONTAINERS, QUEUE_SERVICE, POISON_QUEUE, BLOB_DIAGNOSTICS, QUEUE_DIAGNOSTICS)
