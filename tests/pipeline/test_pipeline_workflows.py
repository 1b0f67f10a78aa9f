"""The structure of the GitHub workflows that an auditor relies on (issue 6).

The workflows cannot run here; these tests read them as data and assert what
matters: triggers, the order of the deployment stages, least privilege, no
secret in a script, pinned actions, and that the workflow builds the Bicep and
the manifests with the same commands the README documents.
"""

from __future__ import annotations

import re
import subprocess  # nosec B404  # runs the repository's own `python -m infra k8s --help`
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_data import DEPLOY_ORDER, REPO, WORKFLOWS, iter_steps, run_commands

PINNED_USES = re.compile(r"^(?P<action>[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@(?P<sha>[0-9a-f]{40})$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"^\s+#\s+(?P<tag>v?\d+\.\d+\.\d+)\s*$")
"""The comment after a pinned ``uses:``: the release's tag exactly as the action's repository names it."""
TAG_PREFIX = {"aquasecurity/trivy-action": ""}
"""Actions whose release tags are not ``v<semver>``: trivy-action's are ``0.35.0`` (releases/tag/0.35.0;
the ``v``-prefixed ones are the pre-0.35.0 tags re-created after the March 2026 compromise)."""
DEPLOY_JOBS = DEPLOY_ORDER[1:]
README = REPO / "pipeline" / "README.md"


def ancestors(jobs: dict[str, Any], job_id: str) -> set[str]:
    """Every job ``job_id`` waits for, following ``needs`` transitively."""
    seen: set[str] = set()
    pending = [job_id]
    while pending:
        needs = jobs[pending.pop()].get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            assert need in jobs, f"{job_id} needs unknown job {need}"
            if need not in seen:
                seen.add(need)
                pending.append(need)
    return seen


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def step_index(job: dict[str, Any], predicate) -> int:
    for index, step in enumerate(steps_of(job)):
        if predicate(step):
            return index
    raise AssertionError("no step matches")


# --- triggers --------------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-007")
def test_ci_runs_on_pull_requests_pushes_and_when_called(ci: dict[str, Any]) -> None:
    assert set(ci["on"]) == {"pull_request", "push", "workflow_call"}
    # main included, although deploy.yml runs CI again for it: a deploy run can wait (reviewers) or be
    # cancelled while pending (one waiting run per concurrency group), so only this trigger gives every
    # push its CI (pipeline/README.md).
    assert not ci["on"]["push"], "CI must run on pushes to every branch"


@pytest.mark.requirement("REQ-REG-005")
def test_deploy_runs_on_push_to_main_and_by_hand_only(deploy: dict[str, Any]) -> None:
    assert set(deploy["on"]) == {"push", "workflow_dispatch"}
    assert deploy["on"]["push"] == {"branches": ["main"]}
    # checkov CKV_GHA_7: a dispatch must not take inputs that could change what is built.
    assert not deploy["on"]["workflow_dispatch"]


@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_a_manual_dispatch_from_another_branch_does_not_deploy(deploy: dict[str, Any]) -> None:
    assert deploy["jobs"]["provision"]["if"] == "github.ref == 'refs/heads/main'"


# --- order -----------------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005")
def test_deploy_calls_the_ci_workflow_first(deploy: dict[str, Any]) -> None:
    ci_job = deploy["jobs"]["ci"]
    assert ci_job["uses"] == "./.github/workflows/ci.yml"
    assert "needs" not in ci_job
    assert "secrets" not in ci_job, "CI must not receive the deployment secrets"


@pytest.mark.requirement("REQ-REG-005")
def test_deploy_has_exactly_the_stages_of_the_issue(deploy: dict[str, Any]) -> None:
    assert tuple(deploy["jobs"]) == DEPLOY_ORDER


@pytest.mark.requirement("REQ-REG-005")
@pytest.mark.parametrize("position", range(1, len(DEPLOY_ORDER)))
def test_each_stage_waits_for_every_earlier_stage(deploy: dict[str, Any], position: int) -> None:
    job_id = DEPLOY_ORDER[position]
    assert ancestors(deploy["jobs"], job_id) == set(DEPLOY_ORDER[:position])


@pytest.mark.requirement("REQ-REG-005")
def test_provision_happens_before_anything_is_published(deploy: dict[str, Any]) -> None:
    jobs = deploy["jobs"]
    for publisher in ("build-image", "publish-functions", "eventgrid", "rollout-aks"):
        assert "provision" in ancestors(jobs, publisher)
    assert "publish-functions" in ancestors(jobs, "eventgrid")
    assert {"build-image", "eventgrid"} <= ancestors(jobs, "rollout-aks")


@pytest.mark.requirement("REQ-REG-005")
def test_one_deployment_at_a_time_and_none_cancelled(deploy: dict[str, Any]) -> None:
    assert deploy["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}


# --- least privilege -------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-014")
@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_workflow_token_is_read_only_by_default(workflows: dict[str, dict[str, Any]], name: str) -> None:
    assert workflows[name]["permissions"] == {"contents": "read"}


@pytest.mark.requirement("REQ-SEC-014")
def test_every_job_declares_its_permissions(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            assert isinstance(job.get("permissions"), dict), f"{name}:{job_id} has no permissions block"
            assert job["permissions"].get("contents") == "read", f"{name}:{job_id}"


@pytest.mark.requirement("REQ-SEC-014")
def test_ci_writes_nothing(ci: dict[str, Any]) -> None:
    for job in ci["jobs"].values():
        assert set(job["permissions"].values()) == {"read"}


@pytest.mark.requirement("REQ-SEC-014")
def test_only_the_deploy_jobs_may_request_an_oidc_token(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            deploys = name == "deploy.yml" and job_id in DEPLOY_JOBS
            assert (job["permissions"].get("id-token") == "write") is deploys, f"{name}:{job_id}"


@pytest.mark.requirement("REQ-SEC-014")
def test_write_scopes_are_the_minimum_per_job(deploy: dict[str, Any]) -> None:
    expected = {job_id: {"id-token"} for job_id in DEPLOY_JOBS}
    expected["build-image"] = {"id-token", "attestations", "artifact-metadata"}
    expected["ci"] = set()
    for job_id, job in deploy["jobs"].items():
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert writes == expected[job_id], job_id


ACTION_PERMISSIONS = {
    # The action's README (v3.1 onwards; v4 wraps actions/attest): id-token for the Sigstore signing
    # certificate, attestations to persist the attestation, artifact-metadata for the artifact storage
    # record that push-to-registry creates (without it the record is dropped with a warning).
    "actions/attest-build-provenance": {"id-token", "attestations", "artifact-metadata"},
}
"""Write scopes the job of a step using the action needs, as each action documents them."""


@pytest.mark.requirement("REQ-SEC-014", "REQ-REG-004")
def test_a_job_grants_every_scope_its_actions_document(workflows: dict[str, dict[str, Any]]) -> None:
    used = set()
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            writes = {scope for scope, level in job.get("permissions", {}).items() if level == "write"}
            for step in job.get("steps", []):
                action = str(step.get("uses", "")).split("@", 1)[0]
                if action in ACTION_PERMISSIONS:
                    used.add(action)
                    missing = ACTION_PERMISSIONS[action] - writes
                    assert not missing, f"{name}:{job_id} uses {action} without {sorted(missing)}: write"
    assert used == set(ACTION_PERMISSIONS)


@pytest.mark.requirement("REQ-SEC-014", "REQ-REG-005")
def test_deploy_jobs_run_in_the_protected_production_environment(deploy: dict[str, Any]) -> None:
    for job_id in DEPLOY_JOBS:
        assert deploy["jobs"][job_id]["environment"] == "production", job_id
    assert "environment" not in deploy["jobs"]["ci"]


@pytest.mark.requirement("REQ-SEC-014")
def test_azure_login_is_openid_connect_only(workflows: dict[str, dict[str, Any]]) -> None:
    logins = [(job_id, step) for workflow in workflows.values() for job_id, step in iter_steps(workflow)
              if str(step.get("uses", "")).startswith("azure/login@")]
    assert {job_id for job_id, _ in logins} == set(DEPLOY_JOBS)
    for job_id, step in logins:
        assert set(step["with"]) == {"client-id", "tenant-id", "subscription-id"}, job_id
    text = "".join(path.read_text(encoding="utf-8") for path in WORKFLOWS.glob("*.yml"))
    for forbidden in ("creds:", "client-secret", "AZURE_CREDENTIALS", "clientSecret", "publish-profile"):
        assert forbidden not in text


@pytest.mark.requirement("REQ-SEC-014")
def test_checkouts_do_not_keep_the_token(workflows: dict[str, dict[str, Any]]) -> None:
    checkouts = [step for workflow in workflows.values() for _, step in iter_steps(workflow)
                 if str(step.get("uses", "")).startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


# --- secrets and script injection ------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-014")
def test_no_expression_is_expanded_inside_a_script(workflows: dict[str, dict[str, Any]]) -> None:
    # Values reach scripts through `env:` only: no secret can be echoed by a `run:` line and no
    # expression (branch names, commit messages, outputs) can inject shell code.
    for name, workflow in workflows.items():
        for job_id, step in iter_steps(workflow):
            script = step.get("run", "")
            assert "${{" not in script, f"{name}:{job_id}:{step.get('name')}"
            assert "secrets." not in script, f"{name}:{job_id}:{step.get('name')}"


@pytest.mark.requirement("REQ-SEC-014")
def test_secrets_are_read_only_by_the_azure_login_step(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            assert "secrets." not in str(job.get("env", {})), f"{name}:{job_id} puts a secret in the job env"
            for step in job.get("steps", []):
                if "secrets." in str(step):
                    assert str(step.get("uses", "")).startswith("azure/login@"), f"{name}:{job_id}"


@pytest.mark.requirement("REQ-SEC-014")
def test_the_event_grid_job_never_holds_the_blobs_extension_key(deploy: dict[str, Any]) -> None:
    # eventgrid.bicep reads the key with listKeys() inside the deployment; the job only checks it exists.
    script = run_commands(deploy["jobs"]["eventgrid"])
    assert '--query "type(systemKeys.blobs_extension)"' in script
    assert "BLOBS_EXTENSION_KEY" not in script and "::add-mask::" not in script
    assert "GITHUB_OUTPUT" not in script and "GITHUB_ENV" not in script


@pytest.mark.requirement("REQ-SEC-014")
def test_the_app_insights_connection_string_is_masked_and_never_a_job_output(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["rollout-aks"]
    script = run_commands(job)
    read = script.index("pipeline.deployment_outputs --value appInsightsConnectionString")
    mask = script.index('echo "::add-mask::$appinsights"')
    assert read < mask < script.index('--appinsights-connection-string "$appinsights"')
    assert "appInsightsConnectionString" not in str(deploy["jobs"]["provision"]["outputs"])
    assert "appInsights" not in str(job["env"])


# --- pinned actions --------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-014")
def test_every_action_is_pinned_to_a_commit_sha(workflows: dict[str, dict[str, Any]]) -> None:
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            refs = [job["uses"]] if "uses" in job else [step["uses"] for step in job["steps"] if "uses" in step]
            for ref in refs:
                assert ref.startswith("./") or PINNED_USES.fullmatch(ref), f"{name}:{job_id}: {ref}"


def pinned_tags() -> dict[str, set[str]]:
    """``{action: {tag named in the comment}}`` over every pinned ``uses:`` of the workflows."""
    tags: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = USES_LINE.match(line)
            if match and not match["ref"].startswith("./"):
                comment = VERSION_COMMENT.fullmatch(match["rest"])
                assert comment, f"{path.name}: {line.strip()}"
                tags.setdefault(match["ref"].split("@", 1)[0], set()).add(comment["tag"])
    return tags


@pytest.mark.requirement("REQ-SEC-014")
def test_every_pin_names_its_release(workflows: dict[str, dict[str, Any]]) -> None:
    assert pinned_tags()


@pytest.mark.requirement("REQ-SEC-014")
def test_every_pin_comment_is_the_release_tag_the_readme_records() -> None:
    # The comment is what `git ls-remote https://github.com/<action> refs/tags/<tag>` must be given to
    # re-verify the SHA (README), so it must be the tag as the action's repository spells it.
    readme = README.read_text(encoding="utf-8")
    for action, tags in pinned_tags().items():
        (tag,) = tags
        prefix = TAG_PREFIX.get(action, "v")
        assert re.fullmatch(rf"{prefix}\d+\.\d+\.\d+", tag), f"{action}: tags look like {prefix}X.Y.Z, not {tag}"
        row = re.search(rf"^\| `{re.escape(action)}` \| (\S+)", readme, re.M)
        assert row and row[1] == tag, f"{action}: README's pinned-actions table says {row and row[1]}, comment {tag}"


@pytest.mark.requirement("REQ-SEC-014")
def test_an_action_is_pinned_to_one_sha_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for match in re.finditer(r"uses:\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([0-9a-f]{40})", path.read_text()):
            pins.setdefault(match[1], set()).add(match[2])
    assert pins
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


@pytest.mark.requirement("REQ-SEC-014")
def test_the_readme_lists_every_pinned_action() -> None:
    readme = README.read_text(encoding="utf-8")
    for path in WORKFLOWS.glob("*.yml"):
        for match in re.finditer(r"uses:\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([0-9a-f]{40})", path.read_text()):
            assert f"`{match[1]}`" in readme and match[2] in readme, match[0]


# --- CI content ------------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-007")
def test_ci_sets_up_python_311_with_pip_cache_and_node(ci: dict[str, Any]) -> None:
    steps = steps_of(ci["jobs"]["test"])
    python = next(step for step in steps if str(step.get("uses", "")).startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    assert python["with"]["cache"] == "pip"
    assert any(str(step.get("uses", "")).startswith("actions/setup-node@") for step in steps)


@pytest.mark.requirement("REQ-REG-007", "REQ-SEC-015")
def test_ci_runs_the_readme_test_command_and_the_other_gates(ci: dict[str, Any]) -> None:
    runs = [step.get("run", "").strip() for step in steps_of(ci["jobs"]["test"])]
    assert "make test" in runs
    assert "make infra-check" in runs
    assert "make sbom" in runs
    assert ".venv/bin/pip-audit --strict -r requirements.txt" in runs
    assert runs.index("make install") < runs.index("make test")


@pytest.mark.requirement("REQ-REG-007", "REQ-SEC-015")
def test_ci_uploads_junit_always_and_the_sbom(ci: dict[str, Any]) -> None:
    uploads = {step["with"]["path"]: step for step in steps_of(ci["jobs"]["test"])
               if str(step.get("uses", "")).startswith("actions/upload-artifact@")}
    assert uploads["reports/junit.xml"]["if"] == "always()"
    assert uploads["reports/sbom.cdx.json"]["with"]["if-no-files-found"] == "error"


@pytest.mark.requirement("REQ-REG-007", "REQ-SEC-015")
def test_make_test_runs_lint_scan_and_pytest_with_junit() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test: lint scan pytest compliance$", makefile, re.M)
    assert "-m compliance check --junit $(REPORTS)/junit.xml" in makefile  # the gate judges that very run
    assert re.search(r"^lint: .*\bworkflow-lint\b", makefile, re.M)
    assert re.search(r"^scan: .*\bsecrets-scan\b.*\bworkflow-scan\b", makefile, re.M)
    assert "--junitxml=$(REPORTS)/junit.xml" in makefile
    assert "actionlint -shellcheck=" in makefile and "yamllint --strict" in makefile
    assert "detect-secrets scan --all-files" in makefile
    assert "cyclonedx-py requirements requirements.txt" in makefile


@pytest.mark.slow
@pytest.mark.requirement("REQ-SEC-015")
def test_bandit_finds_nothing_and_no_nosec_marker_is_stale() -> None:
    # `make scan`'s bandit command, as the Makefile writes it. A `# nosec` that suppresses nothing hides
    # nothing today but would silence a real finding added to the same statement tomorrow; bandit says
    # so only as a warning ("nosec encountered (B108), but no failed test"), which does not fail it.
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    command = re.search(r"^\t\$\(PY\) -m bandit (.*)$", makefile, re.M)
    assert command, "the Makefile runs bandit"
    result = subprocess.run(  # nosec B603  # the Makefile's own arguments, no shell
        [sys.executable, "-m", "bandit", *command[1].split()], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    stale = [line for line in result.stderr.splitlines() if "nosec encountered" in line]
    assert stale == []


@pytest.mark.requirement("REQ-REG-007")
def test_every_make_target_the_workflows_run_exists() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", makefile, re.M))
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        used |= set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", path.read_text(encoding="utf-8")))
    assert used >= {"install", "test", "sbom", "infra-check", "install-python", "functions-package"}
    missing = used - targets
    if missing == {"infra-check"} and not (REPO / "infra").is_dir():
        pytest.skip("`make infra-check` comes with the infrastructure package (issue 5), not merged here yet")
    assert not missing


# --- the deployment itself -------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005", "REQ-REG-003")
def test_provision_checks_the_generated_bicep_then_what_if_then_deploys(deploy: dict[str, Any]) -> None:
    script = run_commands(deploy["jobs"]["provision"])
    check = script.index(".venv/bin/python -m infra build --check")
    what_if = script.index("az deployment group what-if")
    create = script.index("az deployment group create")
    outputs = script.index("python -m pipeline.deployment_outputs")
    assert check < what_if < create < outputs
    for command in ("az deployment group what-if", "az deployment group create"):
        start = script.index(command)
        invocation = script[start:script.index("\n", start)]
        assert "--template-file infra/bicep/main.bicep" in invocation
        assert "--parameters @infra/bicep/main.parameters.json" in invocation


@pytest.mark.requirement("REQ-REG-005")
def test_provision_exports_every_output_the_later_jobs_read(deploy: dict[str, Any]) -> None:
    exported = set(deploy["jobs"]["provision"]["outputs"])
    read = set(re.findall(r"needs\.provision\.outputs\.([A-Za-z0-9]+)", (WORKFLOWS / "deploy.yml").read_text()))
    assert read and read <= exported


@pytest.mark.requirement("REQ-SEC-014", "REQ-REG-004")
def test_image_is_scanned_before_it_is_pushed_and_attested_by_digest(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["build-image"]
    build = step_index(job, lambda s: "docker build" in s.get("run", ""))
    scan = step_index(job, lambda s: str(s.get("uses", "")).startswith("aquasecurity/trivy-action@"))
    push = step_index(job, lambda s: "docker push" in s.get("run", ""))
    attest = step_index(job, lambda s: str(s.get("uses", "")).startswith("actions/attest-build-provenance@"))
    assert build < scan < push < attest
    trivy = steps_of(job)[scan]["with"]
    assert trivy["exit-code"] == "1"
    assert set(trivy["severity"].split(",")) == {"HIGH", "CRITICAL"}
    assert trivy["version"] == "v0.69.3", "the Trivy binary is pinned to a release from before the compromise"
    attest_with = steps_of(job)[attest]["with"]
    assert attest_with["subject-digest"] == "${{ steps.push.outputs.digest }}"
    assert job["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    assert '"GIT_COMMIT=${GITHUB_SHA}"' in run_commands(job)
    assert '${IMAGE_REPOSITORY}:${GITHUB_SHA}"' in run_commands(job), "the image is tagged with the commit SHA"


@pytest.mark.requirement("REQ-SEC-014")
def test_acr_login_uses_the_oidc_identity(deploy: dict[str, Any]) -> None:
    script = run_commands(deploy["jobs"]["build-image"])
    assert 'az acr login --name "$REGISTRY_NAME"' in script
    assert "docker login" not in script and "--password" not in script


@pytest.mark.requirement("REQ-REG-005")
def test_function_app_is_published_as_flex_consumption_remote_build(deploy: dict[str, Any]) -> None:
    script = run_commands(deploy["jobs"]["publish-functions"])
    assert "make functions-package" in script
    assert "az functionapp deployment source config-zip" in script
    assert "--src build/functionapp.zip" in script and "--build-remote true" in script


@pytest.mark.requirement("REQ-REG-005", "REQ-FUNC-027")
def test_event_grid_is_deployed_from_its_own_bicep_after_publishing(deploy: dict[str, Any]) -> None:
    script = run_commands(deploy["jobs"]["eventgrid"])
    assert "az bicep build --file infra/bicep/eventgrid.bicep" in script
    assert "python -m pipeline.template_parameters" in script
    wait = script.index("type(systemKeys.blobs_extension)")
    assert wait < script.index("az deployment group create"), "wait for the key the template reads"


@pytest.mark.requirement("REQ-REG-005", "REQ-SEC-014")
def test_rollout_renders_manifests_for_the_attested_digest_and_waits(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["rollout-aks"]
    assert job["env"]["IMAGE_REF"] == (
        "${{ needs.build-image.outputs.image }}@${{ needs.build-image.outputs.digest }}"
    )
    script = run_commands(job)
    render = re.search(r"\.venv/bin/python -m infra k8s (.*)", script)
    assert render is not None
    assert render[1].split()[:2] == ["--image", '"$IMAGE_REF"'] and render[1].split()[-2:] == ["--out", "build/k8s"]
    # Which flags and values: tests/pipeline/test_pipeline_infra_contract.py, from infra itself.
    render_at = script.index("python -m infra k8s")
    check_at = script.index("python -m pipeline.manifest_check build/k8s")
    dry_run = script.index("kubectl apply --dry-run=server --recursive --filename build/k8s")
    assert render_at < check_at < dry_run < script.index("kubectl apply --recursive --filename build/k8s")
    assert script.index("kubectl rollout restart deployment/keda-operator --namespace kube-system") > dry_run
    for deployment in ("medai-http", "medai-blob-worker"):
        assert f"kubectl rollout status deployment/{deployment}" in script


@pytest.mark.requirement("REQ-REG-005")
def test_smoke_checks_live_and_ready_on_both_deployments_and_fails_on_error(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["smoke"]
    script = run_commands(job)
    assert "--fail" in job["env"]["CURL_FLAGS"].split()
    assert "for path in /api/v1/health/live /api/v1/health/ready" in script
    assert 'curl $CURL_FLAGS --output /dev/null --write-out' in script
    assert "https://${FUNCTION_APP_HOST_NAME}${path}" in script
    assert "service/medai-http 18080:80" in script and "http://127.0.0.1:18080${path}" in script
    assert script.count("for path in /api/v1/health/live /api/v1/health/ready") == 2
    assert '"$running" != "$IMAGE_REF"' in script
    assert not any(step.get("continue-on-error") for step in steps_of(job))


@pytest.mark.requirement("REQ-REG-005")
def test_no_deploy_step_is_allowed_to_fail_quietly(deploy: dict[str, Any]) -> None:
    for job_id, step in iter_steps(deploy):
        assert not step.get("continue-on-error"), f"{job_id}:{step.get('name')}"
    for job_id, job in deploy["jobs"].items():
        assert not job.get("continue-on-error"), job_id


# --- the commands are the documented ones ----------------------------------------------------------------


@pytest.mark.requirement("REQ-REG-005")
def test_readme_documents_the_same_generator_commands(deploy: dict[str, Any]) -> None:
    readme = README.read_text(encoding="utf-8")
    assert "python -m infra build --check" in run_commands(deploy["jobs"]["provision"])
    assert "python -m infra build --check" in readme
    assert "python -m infra k8s --image" in readme
    rollout = run_commands(deploy["jobs"]["rollout-aks"])
    flags = set(re.findall(r"(--[a-z-]+) ", rollout[rollout.index("-m infra k8s"):].split("\n", 1)[0]))
    assert len(flags) >= 9
    for flag in flags:
        assert flag in readme, flag


def resource_group_names(text: str) -> set[str]:
    """Literal resource group names in shell examples: ``RG=x``, ``az group create -n x``, ``-g x``."""
    names = set(re.findall(r"\bRG=([^\s;\"]+)", text))
    names |= set(re.findall(r"az group create (?:-n|--name) ([^\s;\"$]+)", text))
    names |= set(re.findall(r"(?:\s-g|--resource-group) ([A-Za-z0-9][^\s;\"]*)", text))
    return names


@pytest.mark.requirement("REQ-REG-005")
def test_the_deploy_by_hand_and_the_pipeline_setup_use_one_resource_group() -> None:
    # An operator who follows "Deploy by hand" and then sets up the pipeline must deploy into the
    # resource group the pipeline's AZURE_RESOURCE_GROUP names, not create a second environment.
    by_hand = resource_group_names((REPO / "infra" / "README.md").read_text(encoding="utf-8"))
    pipeline = resource_group_names(README.read_text(encoding="utf-8"))
    assert by_hand and pipeline
    assert by_hand == pipeline and len(pipeline) == 1, f"infra/README.md {by_hand}, pipeline/README.md {pipeline}"


@pytest.mark.requirement("REQ-REG-005")
def test_infra_k8s_cli_accepts_the_flags_the_workflow_passes() -> None:
    if not (REPO / "infra" / "__main__.py").is_file():
        pytest.skip("the `infra` package (issue 5) is not merged here yet")
    result = subprocess.run(  # nosec B603  # fixed argument list, no shell
        [sys.executable, "-m", "infra", "k8s", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    script = run_commands(yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())["jobs"]["rollout-aks"])
    passed = re.findall(r"(--[a-z-]+) ", script[script.index("-m infra k8s"):].split("\n", 1)[0])
    assert passed
    for flag in passed:
        assert flag in result.stdout, flag


@pytest.mark.requirement("REQ-REG-007")
def test_yaml_on_key_is_read_as_true_by_pyyaml() -> None:
    # Guards load_workflow's mapping: PyYAML (YAML 1.1) turns `on:` into True.
    assert True in yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    assert Path(WORKFLOWS / "ci.yml").read_text().count("\non:\n") == 1
