"""``eventgrid.bicep``: the Event Grid subscription feeding the Flex Consumption blob trigger.

Deployed *after* the function code is published: the webhook URL carries the
``blobs_extension`` system key, which the Functions host creates only once the
blob trigger function has been indexed. The key is read with ``listKeys`` on
``Microsoft.Web/sites/host`` inside the deployment, so it never passes through
the pipeline, a parameter file or a log.
"""

from __future__ import annotations

from .. import contract
from ..bicep_model import Expr, Output, Param, Resource, Template, interp

_FUNCTION_APP_NAME = Param(
    "functionAppName", "string", "Name of the Function App (output functionAppName of main.bicep)."
)
_STORAGE_NAME = Param("storageAccountName", "string", "Storage account (output storageAccountName of main.bicep).")
_TOPIC_NAME = Param(
    "systemTopicName", "string", "Event Grid system topic of the storage account (output storageSystemTopicName)."
)
_MAX_ATTEMPTS = Param(
    "maxDeliveryAttempts", "int", "Delivery attempts before an event is dead-lettered.",
    default=30, min_value=1, max_value=30,
)
_TTL = Param(
    "eventTimeToLiveInMinutes", "int", "How long Event Grid keeps retrying an event, in minutes.",
    default=1440, min_value=1, max_value=1440,
)

_APP = Resource("functionApp", "Microsoft.Web/sites", "2024-04-01", {"name": _FUNCTION_APP_NAME.ref}, existing=True)
_HOST = Resource(
    "functionHost", "Microsoft.Web/sites/host", "2024-04-01", {"parent": _APP.ref, "name": "default"}, existing=True,
    description="The Functions host, whose listKeys() returns the blobs_extension system key.",
)
_STORAGE = Resource(
    "storage", "Microsoft.Storage/storageAccounts", "2023-05-01", {"name": _STORAGE_NAME.ref}, existing=True
)
_TOPIC = Resource(
    "systemTopic", "Microsoft.EventGrid/systemTopics", "2022-06-15", {"name": _TOPIC_NAME.ref}, existing=True
)

WEBHOOK_FUNCTION = f"Host.Functions.{contract.FUNCTION_BLOB}"

SUBSCRIPTION = Resource(
    "blobCreated", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "2022-06-15",
    {
        "parent": _TOPIC.ref,
        # Event subscription names allow letters, digits and hyphens only.
        "name": contract.FUNCTION_BLOB.replace("_", "-") + "-" + contract.INPUT_CONTAINER,
        "properties": {
            "destination": {
                "endpointType": "WebHook",
                "properties": {
                    "endpointUrl": interp(
                        "https://", _APP.prop("properties.defaultHostName"),
                        f"/runtime/webhooks/blobs?functionName={WEBHOOK_FUNCTION}&code=",
                        Expr("functionHost.listKeys().systemKeys.blobs_extension"),
                    ),
                    "maxEventsPerBatch": 1,
                    "preferredBatchSizeInKilobytes": 64,
                },
            },
            "eventDeliverySchema": "EventGridSchema",
            "filter": {
                "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
                "subjectBeginsWith": f"/blobServices/default/containers/{contract.INPUT_CONTAINER}/blobs/",
            },
            "retryPolicy": {"maxDeliveryAttempts": _MAX_ATTEMPTS.ref, "eventTimeToLiveInMinutes": _TTL.ref},
            "deadLetterWithResourceIdentity": {
                "identity": {"type": "SystemAssigned"},
                "deadLetterDestination": {
                    "endpointType": "StorageBlob",
                    "properties": {
                        "resourceId": _STORAGE.id,
                        "blobContainerName": contract.EVENTGRID_DEADLETTER_CONTAINER,
                    },
                },
            },
        },
    },
    description="BlobCreated events of the input container delivered to the process_blob function's webhook; "
    "undeliverable events go to the dead-letter container.",
)

EVENTGRID_TEMPLATE = Template(
    description="Post-publish step: Event Grid subscription delivering BlobCreated events of the input container "
    "to the Flex Consumption blob trigger (deploy after the function code is published).",
    params=(_FUNCTION_APP_NAME, _STORAGE_NAME, _TOPIC_NAME, _MAX_ATTEMPTS, _TTL),
    resources=(_APP, _HOST, _STORAGE, _TOPIC, SUBSCRIPTION),
    outputs=(Output("eventSubscriptionName", "string", SUBSCRIPTION.name, "Name of the event subscription."),),
)
