"""The deploy workflow against the infrastructure it deploys.

``infra/`` (the Bicep and ``python -m infra k8s``) and ``.github/workflows/deploy.yml`` were written
apart. These tests take the truth from the generated files and the generator (the Bicep parsed with
pycep-parser, the manifests rendered by ``python -m infra k8s``, its command line) and fail when the
workflow drifts from them: a Bicep output read but never produced, an eventgrid.bicep parameter not
supplied, a ``python -m infra k8s`` flag left at its placeholder, a kubectl name that is not in the
manifests, a hard-coded namespace.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser
from workflow_data import (
    ENV_FROM_OUTPUT,
    NEEDS_OUTPUT,
    REPO,
    STEP_OUTPUT,
    WORKFLOWS,
    command_args,
    flag_values,
    job_scripts,
    output_behind,
)

from infra import __main__ as infra_cli
from infra import manifests as infra_manifests
from pipeline import deployment_outputs, manifest_check, template_parameters

BICEP = REPO / "infra" / "bicep"
DEPLOY_TEXT = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
RENDER = "-m infra k8s"
CHECK = "-m pipeline.manifest_check"
WORKFLOW_OWN_OUTPUTS = {"deploymentName"}
"""provision job outputs that are not Bicep outputs: the name of the deployment (for re-reading it)."""


def _parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def main_bicep() -> dict[str, Any]:
    return _parse(BICEP / "main.bicep")


@pytest.fixture(scope="module")
def eventgrid_bicep() -> dict[str, Any]:
    return _parse(BICEP / "eventgrid.bicep")


def required_parameters(parsed: dict[str, Any]) -> set[str]:
    """Parameters without a default value: a deployment must supply them."""
    return {name for name, spec in parsed["parameters"].items() if spec.get("default") is None}


def description(spec: dict[str, Any]) -> str:
    return next((d["argument"] for d in spec.get("decorators", []) if d["type"] == "description"), "")


def k8s_subcommand() -> argparse.ArgumentParser:
    """The ``python -m infra k8s`` argument parser, from the generator itself."""
    parser = infra_cli._parser()
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return sub.choices["k8s"]


def k8s_value_flags() -> dict[str, argparse.Action]:
    """Every ``python -m infra k8s`` option that takes a value (not ``--help``, ``--check``)."""
    return {action.option_strings[-1]: action for action in k8s_subcommand()._actions
            if action.option_strings and action.nargs != 0}


def rendered(directory: Path) -> dict[str, list[dict[str, Any]]]:
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
            for path in sorted(directory.glob("*.yaml"))}


def objects(files: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for docs in files.values() for obj in docs if obj["kind"] == kind}


# Dummy deployment values: anything that is not one of infra's placeholders.
DUMMY_OUTPUTS = {
    "k8sNamespace": "ns-from-output",
    "workloadIdentityClientId": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "storageAccountName": "stdummy",
    "keyVaultUri": "https://kv-dummy.vault.azure.net/",
    "entraTenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "entraAudience": "api://dummy",
    "appInsightsConnectionString": "InstrumentationKey=11111111-2222-3333-4444-555555555555",
}
DUMMY_IMAGE = "crdummy.azurecr.io/medai-flow@sha256:" + "ab" * 32


def workflow_render_argv(job: dict[str, Any], out: Path) -> list[str]:
    """The workflow's ``python -m infra k8s`` call with its variables replaced by dummy values."""
    argv = ["k8s"]
    for flag, word in flag_values(command_args(job, RENDER)).items():
        if flag == "--out":
            argv += [flag, str(out)]
            continue
        output = output_behind(job, word)
        if output is not None:
            value = DUMMY_OUTPUTS.get(output, f"dummy-{output.lower()}")
        elif word == "$IMAGE_REF":
            value = DUMMY_IMAGE
        else:
            value = "2" if k8s_value_flags()[flag].type is int else f"dummy{flag}"
        argv += [flag, value]
    return argv


@pytest.fixture(scope="module")
def workflow_manifests(deploy: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifests exactly as the rollout job renders them, with dummy deployment values."""
    out = tmp_path_factory.mktemp("k8s")
    assert infra_cli.main(workflow_render_argv(deploy["jobs"]["rollout-aks"], out)) == 0
    return out


# --- the outputs of main.bicep ---------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_required_output_is_an_output_of_main_bicep(main_bicep: dict[str, Any]) -> None:
    missing = set(deployment_outputs.REQUIRED_OUTPUTS) - set(main_bicep["outputs"])
    assert not missing, f"pipeline/deployment_outputs.py requires outputs main.bicep does not have: {missing}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_provision_output_the_workflow_reads_is_a_required_bicep_output(main_bicep: dict[str, Any]) -> None:
    read = {name for job, name in NEEDS_OUTPUT.findall(DEPLOY_TEXT) if job == "provision"}
    read |= set(re.findall(r"pipeline\.deployment_outputs --value (\w+)", DEPLOY_TEXT))
    assert read
    bicep = read - WORKFLOW_OWN_OUTPUTS
    assert bicep <= set(main_bicep["outputs"]), f"not outputs of main.bicep: {bicep - set(main_bicep['outputs'])}"
    assert bicep <= set(deployment_outputs.REQUIRED_OUTPUTS), \
        f"read but not validated by deployment_outputs: {bicep - set(deployment_outputs.REQUIRED_OUTPUTS)}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_provision_job_exports_exactly_the_job_outputs(deploy: dict[str, Any]) -> None:
    provision = deploy["jobs"]["provision"]
    sources = {name: STEP_OUTPUT.match(str(value)) for name, value in provision["outputs"].items()}
    assert all(sources.values()), "every provision output is a step output"
    assert all(name == match[2] for name, match in sources.items() if match), "job output == step output name"
    assert set(provision["outputs"]) == set(deployment_outputs.JOB_OUTPUTS) | WORKFLOW_OWN_OUTPUTS
    assert not set(deployment_outputs.READ_IN_JOB) & set(provision["outputs"])


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_required_output_is_read_by_some_job() -> None:
    read = {name for job, name in NEEDS_OUTPUT.findall(DEPLOY_TEXT) if job == "provision"}
    unread = set(deployment_outputs.JOB_OUTPUTS) - read
    assert not unread, f"exported but never read (drop them from REQUIRED_OUTPUTS): {unread}"
    for name in deployment_outputs.READ_IN_JOB:
        assert f"pipeline.deployment_outputs --value {name}" in DEPLOY_TEXT, name


def _step_writes_output(job: dict[str, Any], step_id: str, name: str) -> bool:
    step = next((s for s in job.get("steps", []) if s.get("id") == step_id), None)
    assert step is not None, f"no step with id {step_id}"
    if "uses" in step:
        return True  # an action's outputs are its own contract
    script = step.get("run", "")
    if "python -m pipeline.deployment_outputs" in script and name in deployment_outputs.JOB_OUTPUTS:
        return True
    return bool(re.search(rf"echo \"{name}=.*>> \"\$GITHUB_OUTPUT\"", script))


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_no_job_reads_an_output_that_is_never_produced(deploy: dict[str, Any]) -> None:
    jobs = deploy["jobs"]
    for job_id, job in jobs.items():
        text = yaml.safe_dump(job)
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        for other, name in NEEDS_OUTPUT.findall(text):
            assert other in needs, f"{job_id} reads needs.{other} without needing it"
            assert name in jobs[other].get("outputs", {}), f"{job_id} reads {other}.outputs.{name}, never set"
        for name, value in job.get("outputs", {}).items():
            match = STEP_OUTPUT.match(str(value))
            assert match, f"{job_id}.outputs.{name}"
            assert _step_writes_output(job, match[1], match[2]), f"{job_id}: step {match[1]} never writes {match[2]}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_no_secret_or_masked_value_is_a_job_output(deploy: dict[str, Any]) -> None:
    for job_id, job in deploy["jobs"].items():
        assert "secrets." not in json.dumps(job.get("outputs", {})), job_id
    # A value read with --value is masked before the script uses it (GitHub drops masked job outputs,
    # so it is read where it is used instead).
    for job_id, job in deploy["jobs"].items():
        for script in job_scripts(job):
            for var in re.findall(r"^\s*(\w+)=\"\$\(.*pipeline\.deployment_outputs --value", script, re.M):
                mask = script.index(f'echo "::add-mask::${var}"')
                uses = [m.start() for m in re.finditer(rf"\${var}\b", script)]
                assert uses and min(uses) == mask + len('echo "::add-mask::'), f"{job_id}: ${var} used unmasked"
                assert "GITHUB_OUTPUT" not in script and "GITHUB_ENV" not in script, job_id


PIPELINE_README = REPO / "pipeline" / "README.md"


def secret_words() -> set[str]:
    """What the environment's secrets hold, from the README's table of them: ``AZURE_<WORD>_ID`` -> word.

    The workflows must log in with exactly those secrets, so the words (client, tenant, subscription)
    name every id a job output could repeat.
    """
    readme = PIPELINE_README.read_text(encoding="utf-8")
    table = readme[readme.index("| Secret | Value |"):]
    table = table[:table.index("\n\n")]
    documented = set(re.findall(r"^\| `(AZURE_[A-Z_]+)` \|", table, re.M))
    used = set(re.findall(r"secrets\.(\w+)", "".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))))
    assert documented and documented == used, "the README's secrets table lists the secrets the workflows use"
    words = {re.fullmatch(r"AZURE_([A-Z]+)_ID", name)[1].lower() for name in documented}
    assert words == {"client", "tenant", "subscription"}
    return words


CONTAINS_THE_TENANT_ID = {"aksOidcIssuerUrl"}
"""Outputs the Bicep cannot show to hold a secret's value but that do: AKS issuer URLs have the form
``https://<region>.oic.prod-aks.azure.com/<tenant id>/<guid>/``."""


def outputs_that_may_equal_a_secret(parsed: dict[str, Any], words: set[str]) -> set[str]:
    """main.bicep outputs whose value is, may be, or may contain one of the secrets' ids.

    An output qualifies when its name or description (or that of the parameter it returns) names a
    client, tenant or subscription id, or its expression reads one (``subscription().tenantId``,
    ``identity.properties.clientId``, ``tenant()``, ...), directly or through a parameter's default.
    """
    ids = {f"{word}id" for word in words}
    found = CONTAINS_THE_TENANT_ID & set(parsed["outputs"])
    parameters = parsed["parameters"]
    for name, spec in parsed["outputs"].items():
        parameter = parameters.get(spec["value"]) if isinstance(spec["value"], str) else None
        prose = [name, description(spec)] + ([description(parameter)] if parameter else [])
        reads = _leaves(spec["value"]) | (_leaves(parameter.get("default")) if parameter else set())
        named = any(re.search(rf"\b{word}\b|{word} ?id", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower())
                    for text in prose for word in words)
        if named or {leaf.lower() for leaf in reads} & (ids | words):
            found.add(name)
    return found


def _leaves(expression: Any) -> set[str]:
    """The names an expression parsed by pycep reads: functions called, properties and symbols (no null slots)."""
    if isinstance(expression, str):
        return {expression}
    if isinstance(expression, dict):
        return set().union(*(_leaves(value) for value in expression.values())) if expression else set()
    if isinstance(expression, list):
        return set().union(*(_leaves(value) for value in expression)) if expression else set()
    return set()


@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_no_job_output_is_named_like_a_secret(workflows: dict[str, dict[str, Any]]) -> None:
    # GitHub passes on no job output whose value contains a secret: the next job reads "". So no job
    # output may be an id of the kind the secrets hold, nor be built from a secret.
    words = secret_words()
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            for output, value in job.get("outputs", {}).items():
                assert "secrets." not in str(value), f"{name}:{job_id}.outputs.{output}"
                spoken = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", output).lower()
                assert not any(word in spoken for word in words), f"{name}:{job_id}.outputs.{output} names a secret"


@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_no_bicep_output_that_may_equal_a_secret_is_a_job_output(
    deploy: dict[str, Any], main_bicep: dict[str, Any]
) -> None:
    risky = outputs_that_may_equal_a_secret(main_bicep, secret_words())
    # entraTenantId defaults to subscription().tenantId, AZURE_TENANT_ID's very value; the audience may
    # be an app registration's client id (its parameter's description says so).
    assert {"entraTenantId", "workloadIdentityClientId", "entraAudience", "aksOidcIssuerUrl"} <= risky
    exported = {STEP_OUTPUT.match(str(value))[2] for value in deploy["jobs"]["provision"]["outputs"].values()}
    assert not risky & exported, f"job outputs GitHub may drop as secrets: {sorted(risky & exported)}"
    assert not risky & set(deployment_outputs.JOB_OUTPUTS)
    # Those the workflow needs are read from the deployment by the job that uses them.
    needed = risky & set(deployment_outputs.REQUIRED_OUTPUTS)
    for output in needed:
        assert f"pipeline.deployment_outputs --value {output}" in DEPLOY_TEXT, output


# --- main.bicep parameters -------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_required_main_bicep_parameter_comes_from_the_github_environment(
    deploy: dict[str, Any], main_bicep: dict[str, Any]
) -> None:
    provision = deploy["jobs"]["provision"]
    required = required_parameters(main_bicep)
    assert required, "main.bicep has required parameters (entraAudience)"
    for command in ("az deployment group what-if", "az deployment group create"):
        args = command_args(provision, command)
        passed = dict(arg.split("=", 1) for arg in args if re.fullmatch(r"\w+=\$\w+", arg))
        for name in required:
            assert name in passed, f"{command} does not set {name} (main.parameters.json holds an example)"
            assert str(provision["env"][passed[name].lstrip("$")]).startswith("${{ vars."), name


# --- eventgrid.bicep -------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_required_eventgrid_parameter_is_offered(eventgrid_bicep: dict[str, Any]) -> None:
    required = required_parameters(eventgrid_bicep)
    assert required
    assert required <= set(template_parameters.OFFERED), \
        f"eventgrid.bicep requires what the workflow does not offer: {required - set(template_parameters.OFFERED)}"
    stale = set(template_parameters.OFFERED) - set(eventgrid_bicep["parameters"])
    assert not stale, f"offered but not parameters of eventgrid.bicep: {stale}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_each_offered_parameter_is_fed_from_the_output_its_description_names(
    deploy: dict[str, Any], eventgrid_bicep: dict[str, Any], main_bicep: dict[str, Any]
) -> None:
    env = deploy["jobs"]["eventgrid"]["env"]
    for parameter, variable in template_parameters.OFFERED.items():
        assert variable in env, f"the eventgrid job does not set {variable} ({parameter})"
        source = ENV_FROM_OUTPUT.match(str(env[variable]))
        assert source, f"{variable} must come from a provision output"
        assert source[1] in main_bicep["outputs"], source[1]
        named = re.search(r"output (\w+)", description(eventgrid_bicep["parameters"][parameter]))
        if named:
            assert source[1] == named[1], f"{parameter}: eventgrid.bicep says output {named[1]}, fed {source[1]}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_blobs_extension_key_is_read_by_the_template_and_never_by_the_workflow(
    deploy: dict[str, Any], eventgrid_bicep: dict[str, Any]
) -> None:
    text = (BICEP / "eventgrid.bicep").read_text(encoding="utf-8")
    keys = set(re.findall(r"listKeys\(\)\.systemKeys\.(\w+)", text))
    secure = [name for name, spec in eventgrid_bicep["parameters"].items()
              if any(d["type"] == "secure" for d in spec.get("decorators", []))]
    assert keys and not secure, "eventgrid.bicep reads the system key itself"
    script = "\n".join(job_scripts(deploy["jobs"]["eventgrid"]))
    for key in keys:
        # The job waits for the key to exist (ARM fails on a missing key) but asks only for its type.
        assert f'--query "type(systemKeys.{key})"' in script
    assert script.count("systemKeys") == len(keys), "no other query touches the system keys"
    assert "add-mask" not in script and "_KEY" not in script, "no key value is handled by the workflow"


# --- python -m infra k8s ---------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_workflow_passes_only_flags_infra_k8s_accepts(deploy: dict[str, Any]) -> None:
    passed = set(flag_values(command_args(deploy["jobs"]["rollout-aks"], RENDER)))
    assert passed <= set(k8s_value_flags()), f"unknown flags: {passed - set(k8s_value_flags())}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_flag_whose_default_is_a_placeholder_is_passed(deploy: dict[str, Any]) -> None:
    passed = set(flag_values(command_args(deploy["jobs"]["rollout-aks"], RENDER)))
    placeholders = {flag for flag, action in k8s_value_flags().items()
                    if any(marker.lower() in str(action.default).lower()
                           for marker in manifest_check.PLACEHOLDER_MARKERS)}
    assert placeholders, "infra marks its defaults as placeholders"
    assert placeholders <= passed, f"left at their placeholder: {sorted(placeholders - passed)}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_rendered_manifests_hold_no_placeholder(workflow_manifests: Path) -> None:
    for path in sorted(workflow_manifests.glob("*.yaml")):
        text = path.read_text().lower()
        for marker in manifest_check.PLACEHOLDER_MARKERS:
            assert marker.lower() not in text, f"{path.name} keeps the placeholder {marker!r}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_each_flag_gets_the_bicep_output_infra_says_it_takes(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["rollout-aks"]
    passed = flag_values(command_args(job, RENDER))
    expected = {flag: re.search(r"Bicep output (\w+)", action.help or "") for flag, action in k8s_value_flags().items()}
    expected = {flag: match[1] for flag, match in expected.items() if match}
    # The namespace's help gives no output name; main.bicep's k8sNamespace is "the namespace the manifests
    # must use" (the federated credential's subject).
    expected["--namespace"] = "k8sNamespace"
    assert len(expected) >= 6
    for flag, output in expected.items():
        assert flag in passed, flag
        assert output_behind(job, passed[flag]) == output, f"{flag} must carry the {output} output"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_image_is_the_attested_digest(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["rollout-aks"]
    assert flag_values(command_args(job, RENDER))["--image"] == "$IMAGE_REF"
    assert job["env"]["IMAGE_REF"] == "${{ needs.build-image.outputs.image }}@${{ needs.build-image.outputs.digest }}"


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_image_repository_is_the_one_the_manifests_name(deploy: dict[str, Any]) -> None:
    # infra's placeholder image is <registry>/<repository>@<digest>; the workflow pushes
    # <login server>/$IMAGE_REPOSITORY.
    repository = infra_manifests.K8sConfig().image.split("/", 1)[1].split("@", 1)[0]
    assert deploy["env"]["IMAGE_REPOSITORY"] == repository


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_pipelines_manifest_check_is_given_the_same_values_as_the_render(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["rollout-aks"]
    render = flag_values(command_args(job, RENDER))
    check = flag_values(command_args(job, CHECK))
    for flag in ("--namespace", "--workload-client-id", "--image"):
        assert check[flag] == render[flag], flag
    assert output_behind(job, check["--service-account"]) == "k8sServiceAccount"
    assert command_args(job, CHECK)[0] == render["--out"]
    scripts = "\n".join(job_scripts(job))
    assert scripts.index(RENDER) < scripts.index(CHECK) < scripts.index("kubectl apply")


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_rendered_manifests_pass_the_pipelines_check_with_the_bicep_service_account(
    workflow_manifests: Path, main_bicep: dict[str, Any]
) -> None:
    # `python -m infra k8s` has no service account flag: main.bicep's default must be the manifests' account,
    # and main.parameters.json must not move it, or the federated credential names another subject.
    account = main_bicep["parameters"]["k8sServiceAccount"]["default"]
    overrides = json.loads((BICEP / "main.parameters.json").read_text())["parameters"]
    assert overrides.get("k8sServiceAccount", {"value": account})["value"] == account
    expected = manifest_check.Expected(DUMMY_OUTPUTS["k8sNamespace"], account,
                                       DUMMY_OUTPUTS["workloadIdentityClientId"], DUMMY_IMAGE)
    assert manifest_check.problems(manifest_check.load_manifests(workflow_manifests), expected) == []


# --- kubectl names ---------------------------------------------------------------------------------------


def _app_deployments_waited_for(job: dict[str, Any]) -> set[str]:
    script = "\n".join(job_scripts(job))
    return set(re.findall(r"kubectl rollout status deployment/([\w-]+) --namespace \"\$K8S_NAMESPACE\"", script))


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_rollout_waits_for_every_deployment_the_manifests_hold(
    deploy: dict[str, Any], workflow_manifests: Path
) -> None:
    deployments = set(objects(rendered(workflow_manifests), "Deployment"))
    assert deployments
    assert _app_deployments_waited_for(deploy["jobs"]["rollout-aks"]) == deployments


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_smoke_test_checks_the_image_of_every_deployment(deploy: dict[str, Any], workflow_manifests: Path) -> None:
    files = rendered(workflow_manifests)
    script = "\n".join(job_scripts(deploy["jobs"]["smoke"]))
    loop = re.search(r"for deployment in ([\w -]+); do", script)
    assert loop and set(loop[1].split()) == set(objects(files, "Deployment"))
    assert ".spec.template.spec.containers[0].image" in script
    for deployment in objects(files, "Deployment").values():
        assert len(deployment["spec"]["template"]["spec"]["containers"]) == 1


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_smoke_port_forward_reaches_the_http_pods_health_routes(
    deploy: dict[str, Any], workflow_manifests: Path
) -> None:
    files = rendered(workflow_manifests)
    script = next(s for s in job_scripts(deploy["jobs"]["smoke"]) if "kubectl port-forward" in s)
    forward = re.search(r"kubectl port-forward --namespace \"\$K8S_NAMESPACE\" service/([\w-]+) (\d+):(\d+)", script)
    assert forward, "the smoke test port-forwards a Service"
    service = objects(files, "Service")[forward[1]]
    port = next(p for p in service["spec"]["ports"] if p["port"] == int(forward[3]))
    selector = service["spec"]["selector"]
    pods = [d for d in objects(files, "Deployment").values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert pods, f"service/{forward[1]} selects no Deployment"
    paths = set(re.search(r"for path in ([\w/ -]+); do", script)[1].split())
    assert f"http://127.0.0.1:{forward[2]}${{path}}" in script
    for deployment in pods:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        named = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
        assert port["targetPort"] in named, f"service/{forward[1]} targets no port of {deployment['metadata']['name']}"
        probed = {container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
        assert paths == probed, f"smoke checks {paths}, the pods are probed on {probed}"


def deploy_by_hand_script() -> str:
    """The shell block of infra/README.md's "Deploy by hand", continuation lines folded."""
    readme = (REPO / "infra" / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploy by hand"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.M | re.S)
    script = next(block for block in blocks if "python -m infra k8s" in block)
    return re.sub(r"\\\n\s*", " ", script)


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_manual_smoke_test_runs_no_pod_and_forwards_the_http_service(
    deploy: dict[str, Any], workflow_manifests: Path
) -> None:
    files = rendered(workflow_manifests)
    (namespace,) = objects(files, "Namespace").values()
    # Why no ad-hoc pod can do the check: Pod Security `restricted` rejects a pod without the security
    # context the generated ones have, and the default-deny policy (every pod, both directions) blocks it.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert any(policy["spec"]["podSelector"] == {} and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               and not policy["spec"].get("ingress") and not policy["spec"].get("egress")
               for policy in objects(files, "NetworkPolicy").values())
    script = deploy_by_hand_script()
    kubectl = [line for line in script.splitlines() if re.search(r"\bkubectl\b", line)]
    assert kubectl
    for line in kubectl:
        assert not re.search(r"\bkubectl\b.*\s(run|debug|exec|create)\s", line), line
    forward = re.search(r'kubectl -n "\$\(out k8sNamespace\)" port-forward service/([\w-]+) (\d+):(\d+)', script)
    assert forward, "the manual smoke test reaches the Service through a port-forward"
    smoke = next(s for s in job_scripts(deploy["jobs"]["smoke"]) if "kubectl port-forward" in s)
    pipeline_forward = re.search(r"port-forward --namespace \"\$K8S_NAMESPACE\" service/([\w-]+) (\d+):(\d+)", smoke)
    assert (forward[1], forward[3]) == (pipeline_forward[1], pipeline_forward[3]), "the same Service and port"
    assert forward[1] in objects(files, "Service")
    loop = re.search(r"for path in ([\w/ -]+); do\s+curl [^\n]*http://127\.0\.0\.1:(\d+)\$\{path\}", script)
    assert loop and loop[2] == forward[2], "curl goes to the forwarded local port"
    container = objects(files, "Deployment")["medai-http"]["spec"]["template"]["spec"]["containers"][0]
    probed = {container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
    assert set(loop[1].split()) == probed


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_namespace_manifest_applied_first_is_rendered(deploy: dict[str, Any], workflow_manifests: Path) -> None:
    script = "\n".join(job_scripts(deploy["jobs"]["rollout-aks"]))
    files = set(re.findall(r"--filename build/k8s/([\w.-]+)", script))
    assert files
    for name in files:
        docs = rendered(workflow_manifests)[name]
        assert [doc["kind"] for doc in docs] == ["Namespace"]
        assert docs[0]["metadata"]["name"] == DUMMY_OUTPUTS["k8sNamespace"]
    assert script.index("build/k8s/00-namespace.yaml") < script.index("--dry-run=server")


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_every_kubectl_command_in_the_service_namespace_uses_the_output_namespace(deploy: dict[str, Any]) -> None:
    assert "K8S_NAMESPACE" not in deploy.get("env", {}), "the namespace is decided by the Bicep, not the workflow"
    for job_id in ("rollout-aks", "smoke"):
        job = deploy["jobs"][job_id]
        assert job["env"]["K8S_NAMESPACE"] == "${{ needs.provision.outputs.k8sNamespace }}", job_id
        for script in job_scripts(job):
            for line in script.splitlines():
                if not re.search(r"\bkubectl (get|rollout|port-forward|exec|logs|delete)\b", line):
                    continue
                assert '--namespace "$K8S_NAMESPACE"' in line or "--namespace kube-system" in line, line


# --- the Function App ------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_the_function_app_is_published_for_its_flex_consumption_runtime(
    deploy: dict[str, Any], main_bicep: dict[str, Any]
) -> None:
    sites = [r for r in main_bicep["resources"].values() if r["type"] == "Microsoft.Web/sites" and not r["existing"]]
    assert len(sites) == 1
    config = sites[0]["config"]["properties"]["functionAppConfig"]
    plans = [r for r in main_bicep["resources"].values() if r["type"] == "Microsoft.Web/serverfarms"]
    assert [p["config"]["sku"]["tier"] for p in plans] == ["FlexConsumption"]
    job = deploy["jobs"]["publish-functions"]
    python = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert config["runtime"]["name"] == "python"
    assert python["with"]["python-version"] == config["runtime"]["version"]
    # Flex Consumption has no Kudu zip deploy: az's config-zip goes to its one-deploy endpoint, which
    # stores the package in the deployment container and (remote build) installs requirements.txt.
    assert config["deployment"]["storage"]["type"] == "blobContainer"
    args = flag_values(command_args(job, "az functionapp deployment source config-zip"))
    assert args["--build-remote"] == "true"
    assert args["--name"] == "$FUNCTION_APP_NAME"
    assert job["env"]["FUNCTION_APP_NAME"] == "${{ needs.provision.outputs.functionAppName }}"


# --- every variable a script reads is defined ------------------------------------------------------------

_RUNNER_VARIABLES = re.compile(r"^(GITHUB|RUNNER)_[A-Z_]+$")


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_every_variable_a_script_reads_is_defined(workflows: dict[str, dict[str, Any]], name: str) -> None:
    workflow = workflows[name]
    for job_id, job in workflow["jobs"].items():
        defined = set(workflow.get("env", {})) | set(job.get("env", {}))
        for step in job.get("steps", []):
            script = step.get("run", "")
            local = defined | set(step.get("env", {}))
            local |= set(re.findall(r"^\s*(?:for\s+)?([A-Za-z_]\w*)(?:=|\s+in\s)", script, re.M))
            local |= set(re.findall(r"\b(?:local|export|read)\s+([A-Za-z_]\w*)", script))
            for var in set(re.findall(r"\$\{?([A-Za-z_]\w*)", script)):
                assert var in local or _RUNNER_VARIABLES.match(var), f"{name}:{job_id}:{step.get('name')}: ${var}"
            defined |= set(re.findall(r"echo \"([A-Z_]+)=.*>> \"\$GITHUB_ENV\"", script))
