"""Command line: ``python -m infra build`` and ``python -m infra k8s``.

``build`` writes the Bicep (``infra/bicep``); ``k8s`` writes the Kubernetes
manifests (``infra/k8s`` by default, or ``--out DIR``). With ``--check`` either
command writes nothing and exits 1 when the files on disk differ from a fresh
generation (drift), listing the differences.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .build import BICEP_DIR, K8S_DIR, bicep_files, drift, write_files
from .manifests import K8sConfig, render


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="write infra/bicep (main.bicep, modules, eventgrid.bicep, parameters)")
    build.add_argument("--out", type=Path, default=BICEP_DIR, help="output directory (default: infra/bicep)")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files are out of date")

    k8s = sub.add_parser("k8s", help="write the Kubernetes manifests")
    defaults = K8sConfig()
    k8s.add_argument("--out", type=Path, default=K8S_DIR, help="output directory (default: infra/k8s)")
    k8s.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files are out of date")
    k8s.add_argument("--image", default=defaults.image, help="image reference, by digest (registry/repo@sha256:...)")
    k8s.add_argument("--workload-client-id", default=defaults.workload_client_id,
                     help="client id of the workload identity (Bicep output workloadIdentityClientId)")
    k8s.add_argument("--storage-account", default=defaults.storage_account,
                     help="storage account name (Bicep output storageAccountName)")
    k8s.add_argument("--namespace", default=defaults.namespace, help="Kubernetes namespace (default: medai)")
    k8s.add_argument("--key-vault-uri", default=defaults.key_vault_uri, help="Bicep output keyVaultUri")
    k8s.add_argument("--entra-tenant-id", default=defaults.entra_tenant_id, help="Bicep output entraTenantId")
    k8s.add_argument("--entra-audience", default=defaults.entra_audience, help="Bicep output entraAudience")
    k8s.add_argument("--appinsights-connection-string", default=defaults.appinsights_connection_string,
                     help="Bicep output appInsightsConnectionString")
    k8s.add_argument("--worker-processes", type=int, default=defaults.worker_processes,
                     help="FUNCTIONS_WORKER_PROCESS_COUNT of the pods (default: 1)")
    return parser


def _finish(files: dict[str, str], out: Path, check: bool, pattern: str) -> int:
    if check:
        problems = drift(files, out, pattern)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("generated files are out of date: run `python -m infra build` / `python -m infra k8s`",
                  file=sys.stderr)
            return 1
        print(f"{out}: {len(files)} files up to date")
        return 0
    for path in write_files(files, out):
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "build":
        return _finish(bicep_files(), args.out, args.check, "*.bicep")
    cfg = K8sConfig(
        image=args.image,
        workload_client_id=args.workload_client_id,
        storage_account=args.storage_account,
        namespace=args.namespace,
        key_vault_uri=args.key_vault_uri,
        entra_tenant_id=args.entra_tenant_id,
        entra_audience=args.entra_audience,
        appinsights_connection_string=args.appinsights_connection_string,
        worker_processes=args.worker_processes,
    )
    return _finish(render(cfg), args.out, args.check, "*.yaml")


if __name__ == "__main__":
    sys.exit(main())
