"""Log Analytics workspace and Application Insights, both with local (key) authentication disabled."""

from __future__ import annotations

from ..bicep_model import Expr, Resource
from . import params as p

LOG_ANALYTICS = Resource(
    "logAnalytics", "Microsoft.OperationalInsights/workspaces", "2023-09-01",
    {
        "name": p.LOG_ANALYTICS_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "properties": {
            "sku": {"name": "PerGB2018"},
            "retentionInDays": p.LOG_RETENTION_DAYS.ref,
            "features": {"disableLocalAuth": True, "enableLogAccessUsingOnlyResourcePermissions": True},
            "publicNetworkAccessForIngestion": "Enabled",
            "publicNetworkAccessForQuery": "Enabled",
        },
    },
    description="Logs of every resource, Application Insights telemetry and AKS Container Insights.",
)

APP_INSIGHTS = Resource(
    "appInsights", "Microsoft.Insights/components", "2020-02-02",
    {
        "name": p.APP_INSIGHTS_NAME.ref,
        "location": p.LOCATION.ref,
        "tags": p.COMMON_TAGS.ref,
        "kind": "web",
        "properties": {
            "Application_Type": "web",
            "WorkspaceResourceId": LOG_ANALYTICS.id,
            "IngestionMode": "LogAnalytics",
            "DisableLocalAuth": True,
            "publicNetworkAccessForIngestion": "Enabled",
            "publicNetworkAccessForQuery": "Enabled",
        },
    },
    description="Telemetry of the Function App and the AKS pods; ingestion requires Entra ID (local auth off).",
)


def diagnostics(symbol: str, target: Resource, categories: tuple[str, ...], metrics: bool = True) -> Resource:
    """Send a resource's logs (and metrics) to the Log Analytics workspace.

    Args:
        symbol: Symbolic name of the diagnostic setting.
        target: The resource whose logs are collected.
        categories: Log categories, or ``("allLogs",)`` for the category group.
        metrics: Also send ``AllMetrics``.
    """
    if categories == ("allLogs",):
        logs = [{"categoryGroup": "allLogs", "enabled": True}]
    else:
        logs = [{"category": c, "enabled": True} for c in categories]
    properties: dict = {"workspaceId": LOG_ANALYTICS.id, "logs": logs}
    if metrics:
        properties["metrics"] = [{"category": "AllMetrics", "enabled": True}]
    return Resource(
        symbol, "Microsoft.Insights/diagnosticSettings", "2021-05-01-preview",
        {"name": "to-log-analytics", "scope": target.ref, "properties": properties},
        description=f"Audit and diagnostic logs of {target.symbol} kept in Log Analytics.",
    )


def app_insights_connection_string() -> Expr:
    """The Application Insights connection string (not a secret: ingestion needs Entra ID)."""
    return APP_INSIGHTS.prop("properties.ConnectionString")
