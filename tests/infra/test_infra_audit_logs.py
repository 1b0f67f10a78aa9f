"""Azure-side audit logs: who read a secret or a blob can be established afterwards.

Key Vault (every secret read by the service identities), the registry, and the blob and queue
services send their audit logs to the Log Analytics workspace, read back from the emitted Bicep.
Written for the threat model's repudiation threats (compliance/data/threats.yaml).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.requirement("REQ-SEC-012")

DIAGNOSTICS = "Microsoft.Insights/diagnosticSettings"
WORKSPACE_ID = {"operator": {"type": "property_accessor", "operands": {"operand_1": "logAnalytics", "operand_2": "id"}}}


def test_key_vault_and_registry_send_all_their_logs_to_log_analytics(main_bicep, of_type):
    settings = {d["scope"]: d["properties"] for d in of_type(main_bicep, DIAGNOSTICS)}
    for scope in ("keyVault", "registry"):
        assert settings[scope]["workspaceId"] == WORKSPACE_ID, scope
        assert {"categoryGroup": "allLogs", "enabled": True} in settings[scope]["logs"], scope


def test_blob_and_queue_reads_writes_and_deletes_are_logged(main_bicep, of_type):
    settings = {d["scope"]: d["properties"] for d in of_type(main_bicep, DIAGNOSTICS)}
    for scope in ("blobService", "queueService"):
        assert settings[scope]["workspaceId"] == WORKSPACE_ID, scope
        enabled = {log["category"] for log in settings[scope]["logs"] if log["enabled"]}
        assert enabled == {"StorageRead", "StorageWrite", "StorageDelete"}, scope
