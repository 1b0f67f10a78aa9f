"""A local batch run against Azurite, in one command (``make batch-demo``).

Starts the Azure Storage emulator, creates the four containers, uploads a few
real files (good and bad) to ``inference-input``, runs the batch handler over
them with ``python -m service.backfill`` (the per-blob handler the blob trigger
uses), prints what landed where, and stops the emulator.

    python tools/batch_demo.py [--keep]   # --keep: leave Azurite running and print its connection string
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404  # runs the repository's own backfill module with fixed arguments
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.azurite import Azurite  # noqa: E402 - after the path fix above

INPUTS = ROOT / "tests" / "data" / "inputs"
SAMPLES = {
    "ward-7/ct/CT_small.dcm": "real_CT_small.dcm",
    "ward-7/ct/CT_j2k.dcm": "real_CT_j2k_lossy_693.dcm",
    "ward-7/ct/truncated.dcm": "syn_ct_truncated_pixeldata.dcm",
    "ward-9/mr/MR_small.dcm": "real_MR_small_RLE.dcm",
    "ward-9/notes/scan.png": "not_an_image.png",
}
CONTAINERS = ("inference-input", "inference-results", "inference-errors", "inference-archive")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave Azurite running at the end")
    args = parser.parse_args(argv)

    from azure.storage.blob import BlobServiceClient

    location = Path(tempfile.mkdtemp(prefix="medai-azurite-"))
    azurite = Azurite(location)
    try:
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        for container in CONTAINERS:
            client.create_container(container)
        for name, source in SAMPLES.items():
            client.get_blob_client("inference-input", name).upload_blob((INPUTS / source).read_bytes())
        print(f"uploaded {len(SAMPLES)} files to inference-input; running python -m service.backfill ...\n")
        env = {
            **os.environ,
            "AzureWebJobsStorage": azurite.connection_string,
            "MEDAI_ENVIRONMENT": "local",
            "MEDAI_AUTH_MODE": "none",
        }
        run = subprocess.run(  # nosec B603  # fixed arguments: this interpreter and a module of the repository
            [sys.executable, "-m", "service.backfill", "--no-progress"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        print("summary:", run.stdout.strip() or run.stderr.strip())
        print("\nwhat landed where:")
        for container in CONTAINERS:
            print(f"  {container}/")
            for blob in client.get_container_client(container).list_blobs():
                print(f"    {blob.name}{_describe(client, container, blob.name)}")
        if args.keep:
            print(f"\nAzurite keeps running (pid {azurite.process.pid})")
            print(f"AzureWebJobsStorage={azurite.connection_string}")
            return run.returncode
    finally:
        if not args.keep:
            azurite.stop()
    return run.returncode


def _describe(client: object, container: str, name: str) -> str:
    if container not in ("inference-results", "inference-errors"):
        return ""
    blob = client.get_blob_client(container, name)  # type: ignore[attr-defined]
    document = json.loads(blob.download_blob().readall())
    if document["status"] == "failed":
        return f"   -> {document['problem']['status']} {document['problem']['code']}"
    classes = document["result"]["predictions"][0]["classes"]
    return "   -> " + ", ".join(f"{c['label']} {c['area_mm2']} mm²" for c in classes)


if __name__ == "__main__":
    sys.exit(main())
