"""The small commands the deploy workflow runs (``pipeline/``), tested on real inputs."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import stat
import subprocess  # nosec B404  # runs checkov from its own venv, fixed arguments
import zipfile
from pathlib import Path

import pytest
from workflow_data import REPO

from inference.errors import ConfigurationError
from inference.settings import Settings
from infra import __main__ as infra_cli
from infra import manifests as infra_manifests
from pipeline import (checkov_workflows, deployment_outputs, function_package, manifest_check, secrets_gate,
                      template_parameters)
from security.auth import build_authenticator

# --- deployment_outputs ----------------------------------------------------------------------------------

CONNECTION_STRING = (
    "InstrumentationKey=4a8b2f1c-9d3e-4f5a-8b7c-6d5e4f3a2b1c;"
    "IngestionEndpoint=https://swedencentral-0.in.applicationinsights.azure.com/;"
    "LiveEndpoint=https://swedencentral.livediagnostics.monitor.azure.com/;"
    "ApplicationId=7c6b5a4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
)
GOOD_OUTPUTS = {
    "resourceGroupName": {"type": "String", "value": "rg-medai-flow"},
    "registryLoginServer": {"type": "String", "value": "crmedaiflow.azurecr.io"},
    "registryName": {"type": "String", "value": "crmedaiflow"},
    "aksClusterName": {"type": "String", "value": "aks-medai-flow"},
    "aksOidcIssuerUrl": {"type": "String", "value": "https://swedencentral.oic.prod-aks.azure.com/t/c/"},
    "functionAppName": {"type": "String", "value": "func-medai-flow"},
    "functionAppHostName": {"type": "String", "value": "func-medai-flow.azurewebsites.net"},
    "keyVaultUri": {"type": "String", "value": "https://kv-medai-flow.vault.azure.net/"},
    "keyVaultName": {"type": "String", "value": "kv-medai-flow"},
    "storageAccountName": {"type": "String", "value": "stmedaiflow"},
    "storageSystemTopicName": {"type": "String", "value": "evgt-medai-prod-storage"},
    "workloadIdentityClientId": {"type": "String", "value": "0f8fad5b-d9cb-469f-a165-70867728950e"},
    "entraTenantId": {"type": "String", "value": "72f988bf-86f1-41af-91ab-2d7cd011db47"},
    "entraAudience": {"type": "String", "value": "api://medai-flow,0f8fad5b-d9cb-469f-a165-70867728950f"},
    "appInsightsConnectionString": {"type": "String", "value": CONNECTION_STRING},
    "k8sNamespace": {"type": "String", "value": "medai"},
    "k8sServiceAccount": {"type": "String", "value": "medai-inference"},
    "extra": {"type": "Int", "value": 3},
}


def _run_outputs(outputs: object, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = deployment_outputs.main(list(argv), io.StringIO(json.dumps(outputs)), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.requirement("REQ-REG-005")
def test_outputs_become_name_value_lines_in_contract_order() -> None:
    code, out, _ = _run_outputs(GOOD_OUTPUTS)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "resourceGroupName=rg-medai-flow"
    assert "keyVaultUri=https://kv-medai-flow.vault.azure.net/" in lines
    assert "k8sNamespace=medai" in lines and "storageSystemTopicName=evgt-medai-prod-storage" in lines
    assert [line.split("=", 1)[0] for line in lines] == list(deployment_outputs.JOB_OUTPUTS)


@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_the_connection_string_is_validated_but_never_a_job_output() -> None:
    code, out, _ = _run_outputs(GOOD_OUTPUTS)
    assert code == 0 and CONNECTION_STRING not in out and "appInsightsConnectionString" not in out
    assert "appInsightsConnectionString" in deployment_outputs.REQUIRED_OUTPUTS
    broken = dict(GOOD_OUTPUTS, appInsightsConnectionString={"type": "String", "value": "a\n::stop-commands::x"})
    assert _run_outputs(broken)[0] == 1


@pytest.mark.parametrize("name", ["entraTenantId", "workloadIdentityClientId", "entraAudience"])
@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_the_ids_are_validated_but_read_by_the_job_that_uses_them(name: str) -> None:
    # GitHub would pass on "" for a job output holding a secret's value (the tenant id is AZURE_TENANT_ID's).
    code, out, _ = _run_outputs(GOOD_OUTPUTS)
    assert code == 0 and f"{name}=" not in out and GOOD_OUTPUTS[name]["value"] not in out
    assert _run_outputs(GOOD_OUTPUTS, "--value", name)[1:] == (GOOD_OUTPUTS[name]["value"] + "\n", "")
    assert _run_outputs(dict(GOOD_OUTPUTS, **{name: {"type": "String", "value": ""}}), "--value", name)[0] == 1


@pytest.mark.requirement("REQ-REG-005")
def test_one_value_alone_for_the_job_that_reads_it_itself() -> None:
    code, out, _ = _run_outputs(GOOD_OUTPUTS, "--value", "appInsightsConnectionString")
    assert (code, out) == (0, CONNECTION_STRING + "\n")
    with pytest.raises(SystemExit):
        _run_outputs(GOOD_OUTPUTS, "--value", "notAnOutput")


@pytest.mark.requirement("REQ-REG-005")
def test_a_missing_output_stops_the_deployment_by_name() -> None:
    broken = {name: value for name, value in GOOD_OUTPUTS.items()
              if name not in {"aksClusterName", "registryName", "k8sNamespace"}}
    with pytest.raises(deployment_outputs.OutputError, match="missing: registryName, aksClusterName, k8sNamespace"):
        deployment_outputs.parse_outputs(broken)


@pytest.mark.parametrize(
    "value",
    ["name\nINJECTED=1", "$(curl evil)", "a b", "", "name;rm -rf /", "-flag"],
)
@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_an_unsafe_output_value_is_refused_without_echoing_it(value: str) -> None:
    code, _, err = _run_outputs(dict(GOOD_OUTPUTS, functionAppName={"type": "String", "value": value}))
    assert code == 1
    assert "functionAppName" in err
    if value:
        assert value not in err


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("workloadIdentityClientId", "not-a-guid"),
        ("entraTenantId", "contoso.onmicrosoft.com"),
        ("k8sNamespace", "Medai"),
        ("k8sNamespace", "medai-"),
        ("k8sServiceAccount", "medai inference"),
        ("keyVaultUri", "http://kv-medai-flow.vault.azure.net/"),
        ("entraAudience", "api://a;b"),
        ("appInsightsConnectionString", "InstrumentationKey=x y"),
    ],
)
@pytest.mark.requirement("REQ-REG-005")
def test_each_output_must_have_its_own_form(name: str, value: str) -> None:
    with pytest.raises(deployment_outputs.OutputError, match=name):
        deployment_outputs.parse_outputs(dict(GOOD_OUTPUTS, **{name: {"type": "String", "value": value}}))


@pytest.mark.requirement("REQ-REG-005")
def test_non_string_and_malformed_outputs_fail() -> None:
    with pytest.raises(deployment_outputs.OutputError, match="non-empty string"):
        deployment_outputs.parse_outputs(dict(GOOD_OUTPUTS, registryName={"type": "Int", "value": 1}))
    assert deployment_outputs.main([], io.StringIO("not json"), io.StringIO(), io.StringIO()) == 1
    assert deployment_outputs.main([], io.StringIO("[]"), io.StringIO(), io.StringIO()) == 1


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
        "systemTopicName": {"type": "string"},
        "maxDeliveryAttempts": {"type": "int", "defaultValue": 30},
    }
}
OFFERED = {"functionAppName": "func-x", "storageAccountName": "stx", "systemTopicName": "evgt-x"}


@pytest.mark.requirement("REQ-REG-005")
def test_only_declared_parameters_are_supplied() -> None:
    assert template_parameters.select_parameters(TEMPLATE, OFFERED) == {
        "functionAppName": {"value": "func-x"},
        "storageAccountName": {"value": "stx"},
        "systemTopicName": {"value": "evgt-x"},
    }
    narrow = {"parameters": {"functionAppName": {"type": "string"}}}
    assert template_parameters.select_parameters(narrow, OFFERED) == {"functionAppName": {"value": "func-x"}}


@pytest.mark.requirement("REQ-REG-005")
def test_a_required_parameter_nobody_supplies_fails_by_name() -> None:
    template = {"parameters": dict(TEMPLATE["parameters"], blobsExtensionKey={"type": "securestring"})}
    with pytest.raises(template_parameters.ParameterError, match="blobsExtensionKey"):
        template_parameters.select_parameters(template, OFFERED)
    with pytest.raises(template_parameters.ParameterError, match="systemTopicName"):
        template_parameters.select_parameters(TEMPLATE, dict(OFFERED, systemTopicName=""))


@pytest.mark.requirement("REQ-SEC-014")
def test_the_parameters_file_is_private_and_values_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "eventgrid.json"
    template.write_text(json.dumps(TEMPLATE))
    out = tmp_path / "eventgrid.parameters.json"
    environ = {"FUNCTION_APP_NAME": "func-x", "STORAGE_ACCOUNT_NAME": "stx", "SYSTEM_TOPIC_NAME": "evgt-x"}
    assert template_parameters.main(["--template", str(template), "--out", str(out)], environ) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = json.loads(out.read_text())
    assert document["contentVersion"] == "1.0.0.0"
    assert document["parameters"]["systemTopicName"] == {"value": "evgt-x"}
    printed = capsys.readouterr()
    assert "parameters supplied: functionAppName, storageAccountName, systemTopicName" in printed.out
    assert template_parameters.main(["--template", str(template), "--out", str(out)], {}) == 1


# --- manifest_check --------------------------------------------------------------------------------------

REAL = manifest_check.Expected(
    namespace="medai-prod",
    service_account="medai-inference",
    workload_client_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    image="crmedaiflow.azurecr.io/medai-flow@sha256:" + "ab" * 32,
)


def _render(tmp_path: Path, expected: manifest_check.Expected = REAL, **overrides: str) -> Path:
    """Manifests rendered by the real generator with real-looking values (``None`` leaves infra's default)."""
    values = {
        "--image": expected.image, "--namespace": expected.namespace,
        "--workload-client-id": expected.workload_client_id, "--storage-account": "stmedaiflow",
        "--key-vault-uri": "https://kv-medai-flow.vault.azure.net/",
        "--entra-tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "--entra-audience": "api://medai-flow",
        "--appinsights-connection-string": CONNECTION_STRING,
    }
    values.update(overrides)
    out = tmp_path / "k8s"
    argv = ["k8s", "--out", str(out)]
    for flag, value in values.items():
        if value is not None:
            argv += [flag, value]
    assert infra_cli.main(argv) == 0
    return out


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_manifests_rendered_with_every_value_pass(tmp_path: Path) -> None:
    assert manifest_check.problems(manifest_check.load_manifests(_render(tmp_path)), REAL) == []


@pytest.mark.parametrize("flag", ["--key-vault-uri", "--entra-tenant-id", "--entra-audience",
                                  "--appinsights-connection-string", "--storage-account"])
@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_a_value_left_to_its_placeholder_fails(tmp_path: Path, flag: str) -> None:
    found = manifest_check.problems(manifest_check.load_manifests(_render(tmp_path, **{flag: None})), REAL)
    assert found and all("placeholder" in problem for problem in found), found
    assert any(problem.startswith("02-configmap.yaml") or problem.startswith("22-") for problem in found)


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_committed_placeholder_manifests_fail() -> None:
    defaults = infra_manifests.K8sConfig()
    expected = manifest_check.Expected(defaults.namespace, defaults.service_account,
                                       defaults.workload_client_id, defaults.image)
    found = manifest_check.problems(manifest_check.load_manifests(REPO / "infra" / "k8s"), expected)
    assert any("placeholder" in problem for problem in found)


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_another_namespace_service_account_client_id_or_image_fails(tmp_path: Path) -> None:
    manifests = manifest_check.load_manifests(_render(tmp_path))
    for field, value, needle in [
        ("namespace", "medai", "namespace"),
        ("service_account", "medai-other", "service account"),
        ("workload_client_id", "1f8fad5b-d9cb-469f-a165-70867728950e", "client id"),
        ("image", REAL.image.replace("ab", "cd"), "runs"),
    ]:
        expected = manifest_check.Expected(**{**REAL.__dict__, field: value})
        found = manifest_check.problems(manifests, expected)
        assert found and any(needle in problem for problem in found), (field, found)


@pytest.mark.requirement("REQ-REG-005")
def test_the_command_names_each_problem_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _render(tmp_path, **{"--key-vault-uri": None})
    argv = [str(out), "--namespace", REAL.namespace, "--service-account", REAL.service_account,
            "--workload-client-id", REAL.workload_client_id, "--image", REAL.image]
    assert manifest_check.main(argv) == 1
    assert "02-configmap.yaml: still holds the placeholder 'placeholder'" in capsys.readouterr().err
    assert manifest_check.main([str(_render(tmp_path / "ok")), *argv[1:]]) == 0
    assert manifest_check.main([str(tmp_path / "empty"), *argv[1:]]) == 1


def _config_map(directory: Path) -> dict[str, str]:
    """The ``data`` of the rendered ConfigMap, i.e. the environment the pods start with."""
    (config,) = [obj for _, obj, _ in manifest_check.load_manifests(directory) if obj["kind"] == "ConfigMap"]
    return config["data"]


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_an_empty_tenant_is_refused_as_the_pods_would_refuse_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What rollout-aks rendered when GitHub dropped the entraTenantId job output (it equals the
    # AZURE_TENANT_ID secret): `--entra-tenant-id ""`.
    empty = _render(tmp_path / "empty", **{"--entra-tenant-id": ""})
    assert _config_map(empty)["MEDAI_ENTRA_TENANT_ID"] == ""
    # The independent judge: the service's own start-up (settings, then the authenticator) with the
    # ConfigMap as its environment refuses it, and accepts the same manifests with a tenant.
    with pytest.raises(ConfigurationError, match="MEDAI_ENTRA_TENANT_ID"):
        build_authenticator(Settings.from_env(_config_map(empty)))
    build_authenticator(Settings.from_env(_config_map(_render(tmp_path / "full"))))

    found = manifest_check.problems(manifest_check.load_manifests(empty), REAL)
    assert found == ["02-configmap.yaml: ConfigMap medai-config: MEDAI_ENTRA_TENANT_ID is empty "
                     "(main.bicep output entraTenantId)"]
    argv = [str(empty), "--namespace", REAL.namespace, "--service-account", REAL.service_account,
            "--workload-client-id", REAL.workload_client_id, "--image", REAL.image]
    assert manifest_check.main(argv) == 1
    assert "MEDAI_ENTRA_TENANT_ID is empty" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "setting"), [
    ("--entra-audience", "MEDAI_ENTRA_AUDIENCE"),
    ("--key-vault-uri", "MEDAI_KEY_VAULT_URI"),
    ("--storage-account", "AzureWebJobsStorage__accountName"),
    ("--workload-client-id", "AzureWebJobsStorage__clientId"),
])
@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_other_required_setting_left_empty_fails(tmp_path: Path, flag: str, setting: str) -> None:
    rendered = _render(tmp_path, **{flag: ""})
    assert _config_map(rendered)[setting] == ""
    found = manifest_check.problems(manifest_check.load_manifests(rendered), REAL)
    assert f"02-configmap.yaml: ConfigMap medai-config: {setting} is empty" in "\n".join(found)


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_an_empty_expected_value_fails_even_where_the_manifests_match_it(tmp_path: Path) -> None:
    # An empty --image compared with containers rendered with an empty image would otherwise match.
    manifests = manifest_check.load_manifests(_render(tmp_path, **{"--image": ""}))
    found = manifest_check.problems(manifests, manifest_check.Expected(**{**REAL.__dict__, "image": ""}))
    assert found == ["--image is empty"]
    for field, flag in [("namespace", "--namespace"), ("service_account", "--service-account"),
                        ("workload_client_id", "--workload-client-id")]:
        expected = manifest_check.Expected(**{**REAL.__dict__, field: " "})
        assert f"{flag} is empty" in manifest_check.problems(manifest_check.load_manifests(_render(tmp_path / field)),
                                                             expected)


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_required_settings_are_the_ones_infra_renders_from_those_outputs(tmp_path: Path) -> None:
    # Each required setting exists in the rendered ConfigMap and carries the value of the flag fed
    # from the main.bicep output it names (the flag's help says which output it takes).
    commands = next(a for a in infra_cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {}
    for action in commands.choices["k8s"]._actions:
        named = re.search(r"Bicep output (\w+)", action.help or "")
        if named:
            flags[named[1]] = action.option_strings[-1]
    values = {"--entra-tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "--entra-audience": "api://medai-flow",
              "--key-vault-uri": "https://kv-medai-flow.vault.azure.net/", "--storage-account": "stmedaiflow",
              "--workload-client-id": REAL.workload_client_id, "--appinsights-connection-string": CONNECTION_STRING}
    data = _config_map(_render(tmp_path))
    for setting, output in manifest_check.REQUIRED_SETTINGS.items():
        assert data[setting] == values[flags[output]], setting


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
def test_the_real_deploy_workflow_loses_exactly_the_attestation_scopes(tmp_path: Path) -> None:
    removed = checkov_workflows.prepare(REPO / ".github" / "workflows", tmp_path)
    assert removed == {"ci.yml": [], "deploy.yml": ["attestations: write", "artifact-metadata: write"]}
    original = (REPO / ".github" / "workflows" / "deploy.yml").read_text().splitlines()
    assert len((tmp_path / "deploy.yml").read_text().splitlines()) == len(original) - 2


CHECKOV_VENV = REPO / ".venv-checkov"
_CHECKOV_SCHEMA_SCOPES = (
    "import json; from checkov.github_actions.schemas import gha_workflow; "
    "print(json.dumps(sorted(gha_workflow['definitions']['permissions-event']['properties'])))"
)


def _checkov_python() -> Path:
    python = CHECKOV_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail("checkov is not installed: run `make install` (creates .venv-checkov)")
    return python


@pytest.mark.slow
@pytest.mark.requirement("REQ-SEC-015")
def test_the_known_scopes_are_those_of_checkovs_bundled_schema() -> None:
    # If checkov learns a scope (or forgets one), the list that decides what is hidden must follow.
    result = subprocess.run(  # nosec B603  # fixed argument list, no shell
        [str(_checkov_python()), "-c", _CHECKOV_SCHEMA_SCOPES], capture_output=True, text=True, check=True,
        timeout=120,
    )
    schema = set(json.loads(result.stdout))
    assert schema == checkov_workflows.CHECKOV_PERMISSION_SCOPES
    assert not {"attestations", "artifact-metadata"} & schema, "the scopes deploy.yml's build-image job needs"


@pytest.mark.slow
@pytest.mark.requirement("REQ-SEC-015")
def test_checkov_scans_every_real_workflow_once_the_unknown_scopes_are_hidden(tmp_path: Path) -> None:
    # `make workflow-scan`'s three steps, on the real workflows, with the real checkov.
    checkov_workflows.prepare(REPO / ".github" / "workflows", tmp_path / "scan" / ".github" / "workflows")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    subprocess.run(  # nosec B603  # fixed argument list, no shell
        [str(_checkov_python().parent / "checkov"), "-d", str(tmp_path / "scan"), "--framework", "github_actions",
         "--skip-download", "--compact", "-o", "json", "--output-file-path", str(tmp_path / "report")],
        capture_output=True, text=True, check=False, timeout=600, env=env,
    )
    report = json.loads((tmp_path / "report" / "results_json.json").read_text())
    names = sorted(path.name for path in (REPO / ".github" / "workflows").glob("*.y*ml"))
    assert checkov_workflows.verify(report, names) == []
    assert set(checkov_workflows.count_checks(report)) == set(names)


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
