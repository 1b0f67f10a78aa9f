"""Azure built-in role definitions used by the role assignments.

Ids are the same in every tenant (Azure built-in roles reference). Each role is
the narrowest built-in role that lets its holder do what the system needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Role:
    """A built-in role: its display name, id and why this system needs it."""

    name: str
    id: str
    why: str


STORAGE_BLOB_DATA_OWNER: Final = Role(
    "Storage Blob Data Owner",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "The Functions host keeps its leases and blob-trigger receipts in blob storage and the blob path "
    "reads inputs, writes results and error records and moves or tags inputs (tags need Owner).",
)
STORAGE_BLOB_DATA_CONTRIBUTOR: Final = Role(
    "Storage Blob Data Contributor",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Event Grid writes undeliverable BlobCreated events to the dead-letter container.",
)
STORAGE_QUEUE_DATA_CONTRIBUTOR: Final = Role(
    "Storage Queue Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "The blob trigger writes failed blobs to its poison queue and the poison function reads it.",
)
KEY_VAULT_SECRETS_USER: Final = Role(
    "Key Vault Secrets User",
    "4633458b-17de-408a-b874-0445c86b69e6",
    "The service reads the API keys and the PHI hashing key; it never writes secrets.",
)
ACR_PULL: Final = Role(
    "AcrPull",
    "7f951dff-4691-48f8-8ee2-c9c67fa9d4e5",
    "The AKS kubelet pulls the service image from the registry.",
)
MONITORING_METRICS_PUBLISHER: Final = Role(
    "Monitoring Metrics Publisher",
    "3913510d-42f4-4e42-8a64-420c390055eb",
    "Application Insights has local (key) authentication disabled, so telemetry is sent with Entra ID.",
)
