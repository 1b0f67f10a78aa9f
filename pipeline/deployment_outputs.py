"""Turn the outputs of the Bicep deployment into GitHub Actions step outputs.

``az deployment group show --query properties.outputs`` prints a JSON object
``{"registryLoginServer": {"type": "String", "value": "..."}, ...}``. The
workflow pipes it here and appends the result to ``$GITHUB_OUTPUT``. The
command fails (exit 1) when an output the later jobs depend on is missing or
has a value that could break out of a ``name=value`` line or a shell word, so a
change of the Bicep contract stops the deployment at the provision job rather
than half-way through a rollout.

Usage::

    az deployment group show ... --query properties.outputs -o json \\
      | python -m pipeline.deployment_outputs >> "$GITHUB_OUTPUT"
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

REQUIRED_OUTPUTS: Final = (
    "registryLoginServer",
    "registryName",
    "aksClusterName",
    "functionAppName",
    "functionAppHostName",
    "keyVaultUri",
    "keyVaultName",
    "storageAccountName",
    "workloadIdentityClientId",
    "resourceGroupName",
)
"""The outputs of ``infra/bicep/main.bicep`` that the deploy workflow reads (the issue 5 contract)."""

_SAFE_VALUE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
"""Resource names, host names, URIs and GUIDs: nothing a shell or ``$GITHUB_OUTPUT`` treats specially."""


class OutputError(ValueError):
    """The deployment outputs do not satisfy the contract."""


def parse_outputs(outputs: Mapping[str, Any], required: tuple[str, ...] = REQUIRED_OUTPUTS) -> dict[str, str]:
    """Return ``{name: value}`` for every required output, validated.

    Args:
        outputs: the ``properties.outputs`` object of an ARM deployment.
        required: the output names that must be present.

    Returns:
        The required outputs as strings, in the order of ``required``.

    Raises:
        OutputError: an output is missing, is not a string, is empty or contains
            characters outside ``[A-Za-z0-9._:/-]``.
    """
    if not isinstance(outputs, Mapping):
        raise OutputError("deployment outputs must be a JSON object")
    missing = [name for name in required if name not in outputs]
    if missing:
        raise OutputError(f"deployment outputs missing: {', '.join(missing)}")
    result: dict[str, str] = {}
    for name in required:
        entry = outputs[name]
        value = entry.get("value") if isinstance(entry, Mapping) else None
        if not isinstance(value, str) or not value:
            raise OutputError(f"deployment output {name} must be a non-empty string")
        if not _SAFE_VALUE.fullmatch(value):
            # The value itself is not echoed: it failed validation and could be anything.
            raise OutputError(f"deployment output {name} has characters outside [A-Za-z0-9._:/-]")
        result[name] = value
    return result


def format_github_output(values: Mapping[str, str]) -> str:
    """Format validated values as ``name=value`` lines for ``$GITHUB_OUTPUT``."""
    return "".join(f"{name}={value}\n" for name, value in values.items())


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Read the outputs JSON from ``stdin`` and write ``name=value`` lines to ``stdout``."""
    try:
        values = parse_outputs(json.load(stdin))
    except (OutputError, json.JSONDecodeError) as err:
        print(f"::error::{err}", file=stderr)
        return 1
    stdout.write(format_github_output(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
