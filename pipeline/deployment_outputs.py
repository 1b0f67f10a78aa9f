"""Turn the outputs of the Bicep deployment into GitHub Actions step outputs.

``az deployment group show --query properties.outputs`` prints a JSON object
``{"registryLoginServer": {"type": "String", "value": "..."}, ...}``. The
workflow pipes it here and appends the result to ``$GITHUB_OUTPUT``. The
command fails (exit 1) when an output the later jobs depend on is missing or
does not have the form expected of it (a resource name, a GUID, a namespace,
...), so a change of the Bicep contract stops the deployment at the provision
job rather than half-way through a rollout. No value can break out of a
``name=value`` line or a shell word.

Usage::

    az deployment group show ... --query properties.outputs -o json \\
      | python -m pipeline.deployment_outputs >> "$GITHUB_OUTPUT"

    # one validated value, alone on stdout (for an output that is not a job output: READ_IN_JOB)
    az deployment group show ... --query properties.outputs -o json \\
      | python -m pipeline.deployment_outputs --value entraTenantId
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9._:/-]*"
"""Resource names, host names and URIs: nothing a shell or ``$GITHUB_OUTPUT`` treats specially."""
_GUID: Final = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_DNS_LABEL: Final = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
"""A Kubernetes namespace (RFC 1123 label)."""
_DNS_SUBDOMAIN: Final = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
"""A Kubernetes service account name (RFC 1123 subdomain)."""
_AUDIENCES: Final = rf"{_NAME}(?:, ?{_NAME})*"
"""``entraAudience``: one or more audiences, comma-separated (MEDAI_ENTRA_AUDIENCE)."""
_CONNECTION_STRING: Final = r"[A-Za-z]+=[A-Za-z0-9._:/-]+(?:;[A-Za-z]+=[A-Za-z0-9._:/-]+)*;?"
"""``Key=value;Key=value``, the Application Insights connection string."""

OUTPUT_FORMATS: Final[Mapping[str, re.Pattern[str]]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "resourceGroupName": _NAME,
        "registryLoginServer": _NAME,
        "registryName": _NAME,
        "aksClusterName": _NAME,
        "functionAppName": _NAME,
        "functionAppHostName": _NAME,
        "storageAccountName": _NAME,
        "storageSystemTopicName": _NAME,
        "workloadIdentityClientId": _GUID,
        "keyVaultUri": r"https://" + _NAME,
        "entraTenantId": _GUID,
        "entraAudience": _AUDIENCES,
        "k8sNamespace": _DNS_LABEL,
        "k8sServiceAccount": _DNS_SUBDOMAIN,
        "appInsightsConnectionString": _CONNECTION_STRING,
    }.items()
}
"""Every output of ``infra/bicep/main.bicep`` the deploy workflow reads, with the form its value must have."""

REQUIRED_OUTPUTS: Final = tuple(OUTPUT_FORMATS)
"""The outputs of ``infra/bicep/main.bicep`` that the deploy workflow depends on (validated in provision)."""

READ_IN_JOB: Final = ("workloadIdentityClientId", "entraTenantId", "entraAudience", "appInsightsConnectionString")
"""Validated with the others but not written as job outputs: the job that needs a value reads it from
the deployment itself (``--value``) and masks it.

GitHub does not pass on a job output that contains the value of a secret: the next job receives an
empty string. ``entraTenantId`` defaults to ``subscription().tenantId``, the very value of the
``AZURE_TENANT_ID`` secret the jobs log in with; ``workloadIdentityClientId`` and ``entraAudience``
(which may hold an app registration's client id) are ids of the same directory as the
``AZURE_CLIENT_ID`` secret. Passed as job outputs they would reach ``rollout-aks`` empty, or empty on
the day a configuration makes them equal. ``appInsightsConnectionString`` is not a secret (ingestion
needs Entra ID) but would otherwise be printed in every step's environment."""

JOB_OUTPUTS: Final = tuple(name for name in REQUIRED_OUTPUTS if name not in READ_IN_JOB)
"""The outputs written as ``name=value`` lines, i.e. the ``provision`` job's outputs."""


class OutputError(ValueError):
    """The deployment outputs do not satisfy the contract."""


def parse_outputs(outputs: Mapping[str, Any], required: Sequence[str] = REQUIRED_OUTPUTS) -> dict[str, str]:
    """Return ``{name: value}`` for every required output, validated.

    Args:
        outputs: the ``properties.outputs`` object of an ARM deployment.
        required: the output names that must be present (each a key of :data:`OUTPUT_FORMATS`).

    Returns:
        The required outputs as strings, in the order of ``required``.

    Raises:
        OutputError: an output is missing, is not a string, is empty or does not have the form
            :data:`OUTPUT_FORMATS` gives for it.
    """
    if not isinstance(outputs, Mapping):
        raise OutputError("deployment outputs must be a JSON object")
    unknown = [name for name in required if name not in OUTPUT_FORMATS]
    if unknown:
        raise OutputError(f"not an output the workflow knows: {', '.join(unknown)}")
    missing = [name for name in required if name not in outputs]
    if missing:
        raise OutputError(f"deployment outputs missing: {', '.join(missing)}")
    result: dict[str, str] = {}
    for name in required:
        entry = outputs[name]
        value = entry.get("value") if isinstance(entry, Mapping) else None
        if not isinstance(value, str) or not value:
            raise OutputError(f"deployment output {name} must be a non-empty string")
        pattern = OUTPUT_FORMATS[name]
        if not pattern.fullmatch(value):
            # The value itself is not echoed: it failed validation and could be anything.
            raise OutputError(f"deployment output {name} does not match {pattern.pattern}")
        result[name] = value
    return result


def format_github_output(values: Mapping[str, str]) -> str:
    """Format validated values as ``name=value`` lines for ``$GITHUB_OUTPUT``."""
    return "".join(f"{name}={value}\n" for name, value in values.items())


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Read the outputs JSON from ``stdin``; write the job outputs (or one ``--value``) to ``stdout``."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--value", metavar="NAME", choices=REQUIRED_OUTPUTS,
                        help="print only this output's validated value instead of the job outputs")
    args = parser.parse_args(argv)
    try:
        outputs = json.load(stdin)
        values = parse_outputs(outputs)
    except (OutputError, json.JSONDecodeError) as err:
        print(f"::error::{err}", file=stderr)
        return 1
    if args.value:
        stdout.write(values[args.value] + "\n")
    else:
        stdout.write(format_github_output({name: values[name] for name in JOB_OUTPUTS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
