"""The small commands the deploy workflow runs (``pipeline/``), tested on real inputs."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from pathlib import Path

import pytest
from workflow_data import REPO

from pipeline import checkov_workflows, deployment_outputs, function_package, secrets_gate, template_parameters

# --- deployment_outputs ----------------------------------------------------------------------------------

GOOD_OUTPUTS = {
    "registryLoginServer": {"type": "String", "value": "crmedaiflow.azurecr.io"},
    "registryName": {"type": "String", "value": "crmedaiflow"},
    "aksClusterName": {"type": "String", "value": "aks-medai-flow"},
    "functionAppName": {"type": "String", "value": "func-medai-flow"},
    "functionAppHostName": {"type": "String", "value": "func-medai-flow.azurewebsites.net"},
    "keyVaultUri": {"type": "String", "value": "https://kv-medai-flow.vault.azure.net/"},
    "keyVaultName": {"type": "String", "value": "kv-medai-flow"},
    "storageAccountName": {"type": "String", "value": "stmedaiflow"},
    "workloadIdentityClientId": {"type": "String", "value": "0f8fad5b-d9cb-469f-a165-70867728950e"},
    "resourceGroupName": {"type": "String", "value": "rg-medai-flow"},
    "extra": {"type": "Int", "value": 3},
}


@pytest.mark.requirement("REQ-REG-005")
def test_outputs_become_name_value_lines_in_contract_order() -> None:
    out = io.StringIO()
    assert deployment_outputs.main(io.StringIO(json.dumps(GOOD_OUTPUTS)), out, io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "registryLoginServer=crmedaiflow.azurecr.io"
    assert "keyVaultUri=https://kv-medai-flow.vault.azure.net/" in lines
    assert [line.split("=", 1)[0] for line in lines] == list(deployment_outputs.REQUIRED_OUTPUTS)


@pytest.mark.requirement("REQ-REG-005")
def test_a_missing_output_stops_the_deployment_by_name() -> None:
    broken = {name: value for name, value in GOOD_OUTPUTS.items() if name not in {"aksClusterName", "registryName"}}
    with pytest.raises(deployment_outputs.OutputError, match="missing: registryName, aksClusterName"):
        deployment_outputs.parse_outputs(broken)


@pytest.mark.requirement("REQ-SEC-014")
@pytest.mark.parametrize(
    "value",
    ["name\nINJECTED=1", "$(curl evil)", "a b", "", "name;rm -rf /", "-flag"],
)
def test_an_unsafe_output_value_is_refused_without_echoing_it(value: str) -> None:
    outputs = dict(GOOD_OUTPUTS, functionAppName={"type": "String", "value": value})
    err = io.StringIO()
    assert deployment_outputs.main(io.StringIO(json.dumps(outputs)), io.StringIO(), err) == 1
    assert "functionAppName" in err.getvalue()
    if value:
        assert value not in err.getvalue()


@pytest.mark.requirement("REQ-REG-005")
def test_non_string_and_malformed_outputs_fail() -> None:
    with pytest.raises(deployment_outputs.OutputError, match="non-empty string"):
        deployment_outputs.parse_outputs(dict(GOOD_OUTPUTS, registryName={"type": "Int", "value": 1}))
    assert deployment_outputs.main(io.StringIO("not json"), io.StringIO(), io.StringIO()) == 1
    assert deployment_outputs.main(io.StringIO("[]"), io.StringIO(), io.StringIO()) == 1


# --- function_package ------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-REG-006")
def test_the_package_holds_the_app_at_its_root_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "functionapp.zip"
    function_package.build_package(REPO, out)
    names = zipfile.ZipFile(out).namelist()
    assert {"host.json", "function_app.py", "requirements.txt"} <= set(names)
    assert "models/ct-tissue-seg/model.onnx" in names
    assert "inference/engine.py" in names and "service/http_app.py" in names and "security/auth.py" in names
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"host.json", "function_app.py", "requirements.txt", "inference", "security", "service",
                         "models"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert names == sorted(names)


@pytest.mark.requirement("REQ-REG-005")
def test_the_packaged_files_are_byte_identical_to_the_repository(tmp_path: Path) -> None:
    out = tmp_path / "functionapp.zip"
    function_package.build_package(REPO, out)
    with zipfile.ZipFile(out) as archive:
        assert archive.read("host.json") == (REPO / "host.json").read_bytes()
        model = "models/ct-tissue-seg/model.onnx"
        assert archive.read(model) == (REPO / model).read_bytes()


@pytest.mark.requirement("REQ-REG-005")
def test_the_package_is_reproducible(tmp_path: Path) -> None:
    first = function_package.build_package(REPO, tmp_path / "a.zip")
    second = function_package.build_package(REPO, tmp_path / "b.zip")
    assert first == second == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()


def _fake_app(root: Path) -> None:
    for name in function_package.APP_FILES:
        (root / name).write_text(name)
    for name in function_package.APP_DIRS:
        (root / name).mkdir()
        (root / name / "module.py").write_text("x = 1\n")


@pytest.mark.requirement("REQ-REG-005", "REQ-REG-006")
def test_caches_and_local_settings_are_left_out(tmp_path: Path) -> None:
    _fake_app(tmp_path)
    (tmp_path / "service" / "__pycache__").mkdir()
    (tmp_path / "service" / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "service" / "local.settings.json").write_text("{}")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    (tmp_path / "local.settings.json").write_text("{}")
    out = tmp_path / "build" / "app.zip"
    function_package.build_package(tmp_path, out)
    names = set(zipfile.ZipFile(out).namelist())
    assert names == {"function_app.py", "host.json", "requirements.txt", "inference/module.py",
                     "security/module.py", "service/module.py", "models/module.py"}


@pytest.mark.requirement("REQ-REG-005")
def test_a_missing_part_of_the_app_fails(tmp_path: Path) -> None:
    _fake_app(tmp_path)
    (tmp_path / "host.json").unlink()
    with pytest.raises(FileNotFoundError, match="host.json"):
        function_package.build_package(tmp_path, tmp_path / "app.zip")


# --- template_parameters ---------------------------------------------------------------------------------

TEMPLATE = {
    "parameters": {
        "functionAppName": {"type": "string"},
        "storageAccountName": {"type": "string"},
        "blobsExtensionKey": {"type": "securestring"},
        "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    }
}
OFFERED = {"functionAppName": "func-x", "storageAccountName": "stx", "blobsExtensionKey": "k3y-value"}


@pytest.mark.requirement("REQ-REG-005")
def test_only_declared_parameters_are_supplied() -> None:
    assert template_parameters.select_parameters(TEMPLATE, OFFERED) == {
        "functionAppName": {"value": "func-x"},
        "storageAccountName": {"value": "stx"},
        "blobsExtensionKey": {"value": "k3y-value"},
    }
    narrow = {"parameters": {"functionAppName": {"type": "string"}}}
    assert template_parameters.select_parameters(narrow, OFFERED) == {"functionAppName": {"value": "func-x"}}


@pytest.mark.requirement("REQ-REG-005")
def test_a_required_parameter_nobody_supplies_fails_by_name() -> None:
    template = {"parameters": dict(TEMPLATE["parameters"], eventGridTopicName={"type": "string"})}
    with pytest.raises(template_parameters.ParameterError, match="eventGridTopicName"):
        template_parameters.select_parameters(template, OFFERED)
    with pytest.raises(template_parameters.ParameterError, match="blobsExtensionKey"):
        template_parameters.select_parameters(TEMPLATE, dict(OFFERED, blobsExtensionKey=""))


@pytest.mark.requirement("REQ-SEC-014")
def test_the_parameters_file_is_private_and_the_key_is_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "eventgrid.json"
    template.write_text(json.dumps(TEMPLATE))
    out = tmp_path / "eventgrid.parameters.json"
    environ = {"FUNCTION_APP_NAME": "func-x", "STORAGE_ACCOUNT_NAME": "stx", "BLOBS_EXTENSION_KEY": "k3y-value"}
    assert template_parameters.main(["--template", str(template), "--out", str(out)], environ) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = json.loads(out.read_text())
    assert document["contentVersion"] == "1.0.0.0"
    assert document["parameters"]["blobsExtensionKey"] == {"value": "k3y-value"}
    printed = capsys.readouterr()
    assert "k3y-value" not in printed.out + printed.err
    assert "blobsExtensionKey" in printed.out


# --- checkov_workflows -----------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-015")
def test_only_unknown_permission_scopes_are_hidden_from_checkov() -> None:
    text = (
        "permissions:\n  contents: read\n"
        "jobs:\n  build:\n    name: attestations: write is a phrase here\n"
        "    permissions:\n      contents: read\n      id-token: write\n      attestations: write  # needed\n"
        "    steps:\n      - run: echo attestations: write\n"
    )
    stripped, removed = checkov_workflows.strip_unknown_scopes(text)
    assert removed == ["attestations: write  # needed"]
    assert stripped == text.replace("      attestations: write  # needed\n", "")


@pytest.mark.requirement("REQ-SEC-015")
def test_the_real_deploy_workflow_loses_exactly_one_line(tmp_path: Path) -> None:
    removed = checkov_workflows.prepare(REPO / ".github" / "workflows", tmp_path)
    assert removed == {"ci.yml": [], "deploy.yml": ["attestations: write"]}
    original = (REPO / ".github" / "workflows" / "deploy.yml").read_text().splitlines()
    assert len((tmp_path / "deploy.yml").read_text().splitlines()) == len(original) - 1


def _check(file_path: str, check_id: str = "CKV_GHA_1") -> dict[str, str]:
    return {"file_path": file_path, "check_id": check_id, "check_name": "name", "resource": "jobs(x)"}


@pytest.mark.requirement("REQ-SEC-015")
def test_a_workflow_checkov_silently_skipped_fails_the_scan() -> None:
    report = {"results": {"passed_checks": [_check("/.github/workflows/ci.yml")], "failed_checks": []}}
    problems = checkov_workflows.verify(report, ["ci.yml", "deploy.yml"])
    assert problems == ["deploy.yml: checkov ran no check on it (schema rejected or file not found)"]


@pytest.mark.requirement("REQ-SEC-015")
def test_a_failed_check_fails_the_scan() -> None:
    report = [{"results": {"passed_checks": [_check("/.github/workflows/ci.yml")],
                           "failed_checks": [_check("/.github/workflows/deploy.yml", "CKV_GHA_7")]}}]
    assert checkov_workflows.verify(report, ["ci.yml", "deploy.yml"]) == ["deploy.yml: CKV_GHA_7 name (jobs(x))"]
    assert checkov_workflows.count_checks(report)["deploy.yml"]["failed_checks"] == 1


# --- secrets_gate ----------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-015")
def test_secret_findings_must_be_audited_as_false_positives() -> None:
    baseline = {"results": {
        "a.py": [{"type": "Secret Keyword", "line_number": 3, "is_secret": False}],
        "b.py": [{"type": "Secret Keyword", "line_number": 7}],
        "c.py": [{"type": "AWS Access Key", "line_number": 1, "is_secret": True}],
    }}
    assert secrets_gate.unaudited_findings(baseline) == [
        "b.py:7 Secret Keyword (not audited)",
        "c.py:1 AWS Access Key (labelled a real secret)",
    ]


@pytest.mark.requirement("REQ-SEC-015")
def test_the_committed_secrets_baseline_holds_only_audited_false_positives() -> None:
    baseline = json.loads((REPO / ".secrets.baseline").read_text(encoding="utf-8"))
    assert secrets_gate.unaudited_findings(baseline) == []
    # The finding in the model manifest is the public SHA-256 of the bundled model, not a secret.
    if "models/ct-tissue-seg/manifest.json" in baseline["results"]:
        manifest = json.loads((REPO / "models/ct-tissue-seg/manifest.json").read_text())
        model = (REPO / "models/ct-tissue-seg/model.onnx").read_bytes()
        assert manifest["sha256"] == hashlib.sha256(model).hexdigest()
