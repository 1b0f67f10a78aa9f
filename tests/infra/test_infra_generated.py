"""Generated files are committed and must equal a fresh generation, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.__main__ import main
from infra.build import BICEP_DIR, K8S_DIR, bicep_files
from infra.manifests import K8sConfig, render

pytestmark = pytest.mark.requirement("REQ-REG-003")

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern)) if p.is_file()}


def test_bicep_regenerated_into_a_temp_dir_equals_the_committed_files(tmp_path):
    assert main(["build", "--out", str(tmp_path)]) == 0
    fresh = _tree(tmp_path, "*")
    committed = {k: v for k, v in _tree(BICEP_DIR, "*").items() if k.endswith((".bicep", ".json"))}
    assert fresh.keys() == committed.keys()
    for name in fresh:
        assert fresh[name] == committed[name], f"{name} drifted: run `python -m infra build`"


def test_manifests_regenerated_into_a_temp_dir_equal_the_committed_files(tmp_path):
    assert main(["k8s", "--out", str(tmp_path)]) == 0
    fresh = _tree(tmp_path, "*.yaml")
    committed = _tree(K8S_DIR, "*.yaml")
    assert fresh.keys() == committed.keys()
    for name in fresh:
        assert fresh[name] == committed[name], f"{name} drifted: run `python -m infra k8s`"


def test_generation_is_deterministic():
    assert bicep_files() == bicep_files()
    assert render(K8sConfig()) == render(K8sConfig())


def test_check_passes_on_the_committed_files():
    for command in ("build", "k8s"):
        proc = subprocess.run(
            [sys.executable, "-m", "infra", command, "--check"], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr


def test_check_exits_1_on_drift_and_on_stale_files(tmp_path, capsys):
    assert main(["build", "--out", str(tmp_path)]) == 0
    assert main(["build", "--out", str(tmp_path), "--check"]) == 0
    main_bicep = tmp_path / "main.bicep"
    main_bicep.write_text(main_bicep.read_text() + "// hand edit\n")
    assert main(["build", "--out", str(tmp_path), "--check"]) == 1
    assert "changed:" in capsys.readouterr().err
    assert main(["build", "--out", str(tmp_path)]) == 0
    (tmp_path / "modules" / "old.bicep").write_text("// no longer generated\n")
    assert main(["build", "--out", str(tmp_path), "--check"]) == 1
    assert "stale:" in capsys.readouterr().err
    (tmp_path / "modules" / "old.bicep").unlink()
    (tmp_path / "eventgrid.bicep").unlink()
    assert main(["build", "--out", str(tmp_path), "--check"]) == 1
    assert "missing:" in capsys.readouterr().err


def test_generated_text_files_use_lf_and_end_with_one_newline():
    for path in [*BICEP_DIR.rglob("*.bicep"), *BICEP_DIR.rglob("*.json"), *K8S_DIR.rglob("*.yaml")]:
        data = path.read_bytes()
        assert b"\r" not in data, path
        assert data.endswith(b"\n") and not data.endswith(b"\n\n"), path


def test_readme_documents_every_parameter_and_output():
    from infra.system.eventgrid import EVENTGRID_TEMPLATE
    from infra.system.main import MAIN_TEMPLATE

    readme = (REPO / "infra" / "README.md").read_text()
    for template in (MAIN_TEMPLATE, EVENTGRID_TEMPLATE):
        for param in template.params:
            assert f"| `{param.name}` |" in readme, param.name
    for output in MAIN_TEMPLATE.outputs:
        assert f"`{output.name}`" in readme, output.name
