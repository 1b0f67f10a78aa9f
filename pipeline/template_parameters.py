"""Write an ARM parameters file holding exactly the parameters a template declares.

The Event Grid subscription (``infra/bicep/eventgrid.bicep``, issue 5) is
deployed after the function code is published: its webhook URL carries the
Functions ``blobs_extension`` system key, which exists only once the host has
indexed the blob trigger. The template reads that key itself (``listKeys()`` on
the Functions host inside the deployment), so the workflow never handles it.
The workflow knows a few values from the main deployment (the function app,
storage account and Event Grid system topic names); this command offers them to
the compiled template and keeps the ones it declares. A parameter the template
requires (no default) that the workflow cannot supply fails the deployment
here, by name, instead of as an ARM validation error.

Values are read from the environment (:data:`OFFERED` names the variables); the
parameters file is written with mode 0600.

Usage::

    az bicep build --file infra/bicep/eventgrid.bicep --stdout > "$RUNNER_TEMP/eventgrid.json"
    python -m pipeline.template_parameters --template "$RUNNER_TEMP/eventgrid.json" \\
        --out "$RUNNER_TEMP/eventgrid.parameters.json"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

OFFERED: Final = {
    "functionAppName": "FUNCTION_APP_NAME",
    "storageAccountName": "STORAGE_ACCOUNT_NAME",
    "systemTopicName": "SYSTEM_TOPIC_NAME",
}
"""Template parameter name -> environment variable the workflow's eventgrid job sets (from the
``functionAppName``, ``storageAccountName`` and ``storageSystemTopicName`` outputs of main.bicep)."""

_PARAMETERS_SCHEMA: Final = "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#"


class ParameterError(ValueError):
    """The template needs a parameter the workflow cannot supply."""


def select_parameters(template: Mapping[str, Any], offered: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Return the ARM ``parameters`` object for ``template`` from the ``offered`` values.

    Args:
        template: a compiled ARM template (``az bicep build --stdout``).
        offered: available values by parameter name (empty values count as unavailable).

    Raises:
        ParameterError: a parameter without ``defaultValue`` is not offered.
    """
    declared = template.get("parameters", {})
    if not isinstance(declared, Mapping):
        raise ParameterError("template parameters must be an object")
    chosen: dict[str, dict[str, str]] = {}
    unsupplied: list[str] = []
    for name, spec in declared.items():
        if offered.get(name):
            chosen[name] = {"value": offered[name]}
        elif not (isinstance(spec, Mapping) and "defaultValue" in spec):
            unsupplied.append(name)
    if unsupplied:
        raise ParameterError(f"template requires parameters the workflow does not supply: {', '.join(unsupplied)}")
    return chosen


def write_parameters(path: Path, parameters: Mapping[str, Mapping[str, str]]) -> None:
    """Write an ARM parameters file readable by its owner only."""
    document = {"$schema": _PARAMETERS_SCHEMA, "contentVersion": "1.0.0.0", "parameters": dict(parameters)}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Select the parameters of ``--template`` and write them to ``--out``; print only their names."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="compiled ARM template (JSON)")
    parser.add_argument("--out", type=Path, required=True, help="parameters file to write")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    offered = {name: env.get(variable, "") for name, variable in OFFERED.items()}
    try:
        template = json.loads(args.template.read_text(encoding="utf-8"))
        parameters = select_parameters(template, offered)
    except (ParameterError, json.JSONDecodeError) as err:
        print(f"::error::{err}", file=sys.stderr)
        return 1
    write_parameters(args.out, parameters)
    print(f"parameters supplied: {', '.join(sorted(parameters)) or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
