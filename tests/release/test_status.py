"""`nox -s status` (scripts/release/status.py) on throwaway git repositories, moto (SSM records and history, ECR,
STS, Secrets Manager), a Stubber'd App Runner client (every response checked against the botocore model) and
real HTTP servers on 127.0.0.1 for `/readyz`: nothing deployed, staging ahead of production, everything
promoted, a failed last deploy, services that do not answer, no credentials, a role that may not read staging."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from scripts.release import status as status_mod
from scripts.release import status_promotion, status_render
from scripts.release.record import ProductionHistory, StagingRecord
from scripts.release.usage import USAGE, check
from tests.release.conftest import (
    ACCOUNT,
    REGION,
    aws_clients,
    create_repository,
    create_secrets,
    push_image,
    service,
    service_arn,
)
from tests.release.test_cli import no_aws  # noqa: F401 - the fixture: no AWS credentials anywhere
from tests.release.test_iam import allowed, doc, secret

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


# -- a real HTTP server for /readyz ----------------------------------------------------------------------------
@pytest.fixture
def http():
    """One 127.0.0.1 server; `codes[prefix]` is what `<prefix>/readyz` answers."""
    codes: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            prefix, _, rest = self.path.lstrip("/").partition("/")
            code = codes.get(prefix, 404) if rest == "readyz" else 404
            body = json.dumps({"ready": code == 200}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.codes = codes
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def closed_port_url() -> str:
    """A 127.0.0.1 URL nothing listens on (a service that does not answer at all)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- App Runner, as the botocore model shapes it -----------------------------------------------------------------
def op(kind: str, result: str, minutes: int) -> dict:
    started = T0 + dt.timedelta(minutes=minutes)
    return {
        "Id": f"00000000-0000-4000-8000-{minutes:012d}",
        "Type": kind,
        "Status": result,
        "StartedAt": started,
        "EndedAt": started + dt.timedelta(minutes=4),
        "UpdatedAt": started + dt.timedelta(minutes=4),
    }


def expect_running(stub: Stubber, env, *, url: str, digest: str, commit: str, ops: list[dict]) -> None:
    """list_services, describe_service, list_operations: `env` runs `digest` built from `commit` at `url`."""
    described = service(env, digest=digest, variables={"GIT_SHA": commit})
    described["ServiceUrl"] = url
    stub.add_response(
        "list_services",
        {"ServiceSummaryList": [{"ServiceName": env.service, "ServiceArn": service_arn(env.name)}]},
        {"MaxResults": 20},
    )
    stub.add_response("describe_service", {"Service": described}, {"ServiceArn": service_arn(env.name)})
    stub.add_response(
        "list_operations", {"OperationSummaryList": ops}, {"ServiceArn": service_arn(env.name), "MaxResults": 20}
    )


def expect_gate_describe(stub: Stubber, env, *, url: str, digest: str, commit: str) -> None:
    """The promotion's no-operation-in-progress gate describes production once more (the ARN is known)."""
    described = service(env, digest=digest, variables={"GIT_SHA": commit})
    described["ServiceUrl"] = url
    stub.add_response("describe_service", {"Service": described}, {"ServiceArn": service_arn(env.name)})


def expect_no_service(stub: Stubber) -> None:
    stub.add_response("list_services", {"ServiceSummaryList": []}, {"MaxResults": 20})


# -- records ----------------------------------------------------------------------------------------------------
def ssm():
    return boto3.client("ssm", region_name=REGION)


def record(tree: str, digest: str, commit: str) -> None:
    StagingRecord(ssm()).write(tree, digest, commit, "octo/mv-os/actions/runs/111/attempts/1")


def production_ran(digest: str, tree: str, commit: str, run: str = "octo/mv-os/actions/runs/222/attempts/1") -> None:
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mv-os-backend@{digest}"
    ProductionHistory(ssm()).append(
        digest=digest, image=image, tree=tree, git_sha=commit, run=run, kind="deploy", at="2026-11-02T09:05:00+00:00",
        configuration={},
    )  # fmt: skip


@pytest.fixture
def world(moto, apprunner, target, envs, production):
    """moto with the ECR repository and production's secrets; the Stubber'd App Runner client."""
    create_repository()
    create_secrets(production)
    _, stub = apprunner
    aws = aws_clients(target)
    return stub, aws, envs


def collect(repo, envs, aws):
    return status_mod.collect(repo.path, envs, lambda env: (aws, ""), timeout=2.0)


def gate(s: dict, name: str) -> dict:
    return next(g for g in s["promotion"]["gates"] if g["name"] == name)


# -- the scenarios ----------------------------------------------------------------------------------------------
def test_fresh_repository_nothing_deployed(world, repo):
    stub, aws, envs = world
    expect_no_service(stub)  # staging
    expect_no_service(stub)  # production
    expect_no_service(stub)  # production again, in the promotion's no-operation-in-progress gate
    s = collect(repo, envs, aws)
    assert s["environments"]["staging"]["deployed"] is False
    assert s["environments"]["production"]["deployed"] is False
    assert s["unread"] == []  # nothing deployed is a fact, not a failure to read
    n = s["not_in_production"]
    assert (n["count"], [c["subject"] for c in n["commits"]]) == (2, ["feature A", "initial"])
    assert n["commits"][0]["author"] == "Release Tests"
    assert s["promotion"]["verdict"] == "refused"
    assert not gate(s, "staging-validated")["ok"]
    assert "never validated on staging" in gate(s, "staging-validated")["reason"]
    shown = status_render.text(s)
    assert "mv-os-backend: not deployed" in shown
    assert "FAIL staging-validated: tree" in shown
    assert "2 commit(s) on develop that production does not run:" in shown


def _staging_ahead(world, repo, http, *, production_ops=None):
    """production runs main's only commit; develop has one more commit, deployed to staging and recorded."""
    stub, aws, envs = world
    main_sha, develop_sha = repo.git("rev-parse", "main"), repo.git("rev-parse", "develop")
    main_tree, develop_tree = repo.git("rev-parse", "main^{tree}"), repo.tree()
    old, new = push_image("build-of-main"), push_image("build-of-develop")
    production_ran(old, main_tree, main_sha)
    record(develop_tree, new, develop_sha)
    http.codes.update(staging=200, production=200)
    staging_url, production_url = f"{http.base}/staging", f"{http.base}/production"
    ops = [op("UPDATE_SERVICE", "SUCCEEDED", 30)]
    expect_running(stub, envs["staging"], url=staging_url, digest=new, commit=develop_sha, ops=ops)
    expect_running(
        stub, envs["production"], url=production_url, digest=old, commit=main_sha,
        ops=production_ops or [op("UPDATE_SERVICE", "SUCCEEDED", 0), op("CREATE_SERVICE", "SUCCEEDED", -600)],
    )  # fmt: skip
    expect_gate_describe(stub, envs["production"], url=production_url, digest=old, commit=main_sha)
    return collect(repo, envs, aws), {"old": old, "new": new, "develop": develop_sha, "main": main_sha}


def test_staging_ahead_of_production(world, repo, http):
    s, facts = _staging_ahead(world, repo, http)
    staging, production = s["environments"]["staging"], s["environments"]["production"]
    assert (staging["digest"], staging["commit"], staging["tree"]) == (facts["new"], facts["develop"], repo.tree())
    assert staging["record"] == {
        "valid": True, "digest": facts["new"], "run": "octo/mv-os/actions/runs/111/attempts/1", "problem": None
    }  # fmt: skip
    assert staging["deployed_by"] == "octo/mv-os/actions/runs/111/attempts/1"
    assert staging["deployed_at"] == "2026-11-02T09:34:00+00:00"
    assert staging["ready"] == {"ok": True, "http_status": 200, "detail": "/readyz answered 200"}
    assert (production["digest"], production["commit"]) == (facts["old"], facts["main"])
    assert production["deployed_by"] == "octo/mv-os/actions/runs/222/attempts/1"
    assert production["history"] == {"entries": 1, "entry": 1}
    assert production["last_deploy"]["result"] == "SUCCEEDED"
    assert [c["subject"] for c in s["not_in_production"]["commits"]] == ["feature A"]
    promo = s["promotion"]
    assert promo["verdict"] == "ready", [g["line"] for g in promo["gates"]]
    assert promo["tree"] == repo.tree() and promo["digest"] == facts["new"]
    assert [g["name"] for g in promo["gates"]] == [
        "branch", "image-digest", "aws-credentials", "staging-validated", "not-older-than-production",
        "secrets-namespace", "no-operation-in-progress", "request",
    ]  # fmt: skip
    assert s["unread"] == []
    shown = status_render.text(s)
    assert "READY: every production gate passes" in shown
    assert f"{facts['develop'][:7]} feature A (Release Tests)" in shown
    assert "PASS staging-validated (tree" in shown


def test_a_hotfix_on_main_makes_the_promotion_refused(world, repo, http):
    """A commit made on main changes the tree a promotion would ship: staging never validated it."""
    repo.git("checkout", "-q", "main")
    repo.commit("hotfix.txt", "quick fix\n", "hotfix straight on main")
    repo.git("checkout", "-q", "develop")
    stub, aws, envs = world
    main_sha = repo.git("rev-parse", "main")
    production_ran(push_image("build-of-hotfix"), repo.git("rev-parse", "main^{tree}"), main_sha)
    expect_no_service(stub)
    expect_no_service(stub)
    expect_no_service(stub)
    s = collect(repo, envs, aws)
    assert s["promotion"]["verdict"] == "refused"
    assert "never validated on staging" in gate(s, "staging-validated")["reason"]
    assert s["promotion"]["tree"] not in (repo.tree(), repo.git("rev-parse", "main^{tree}"))


def test_everything_promoted(world, repo, http):
    stub, aws, envs = world
    develop_sha, tree = repo.git("rev-parse", "develop"), repo.tree()
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    merge = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "develop")
    digest = push_image("build-of-develop")
    record(tree, digest, develop_sha)
    production_ran(digest, tree, merge)
    http.codes.update(staging=200, production=200)
    ops = [op("UPDATE_SERVICE", "SUCCEEDED", 60)]
    expect_running(stub, envs["staging"], url=f"{http.base}/staging", digest=digest, commit=develop_sha, ops=ops)
    expect_running(stub, envs["production"], url=f"{http.base}/production", digest=digest, commit=merge, ops=ops)
    expect_gate_describe(stub, envs["production"], url=f"{http.base}/production", digest=digest, commit=merge)
    s = collect(repo, envs, aws)
    assert s["environments"]["production"]["tree"] == tree == s["environments"]["staging"]["tree"]
    assert s["not_in_production"]["count"] == 0
    assert s["promotion"]["verdict"] == "up-to-date"
    assert s["promotion"]["candidate"] == "main, which already contains develop"
    shown = status_render.text(s)
    assert "0 commit(s) on develop that production does not run:" in shown
    assert "nothing to promote: production already runs this tree" in shown


def test_a_failed_last_deploy(world, repo, http):
    ops = [op("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED", 90), op("UPDATE_SERVICE", "SUCCEEDED", 0)]
    s, facts = _staging_ahead(world, repo, http, production_ops=ops)
    production = s["environments"]["production"]
    assert production["last_deploy"]["result"] == "ROLLBACK_SUCCEEDED"
    assert production["last_deploy"]["operation"] == ops[0]["Id"]
    # It still runs what the last successful deploy put there, since then.
    assert production["deployed_at"] == "2026-11-02T09:04:00+00:00"
    assert production["digest"] == facts["old"]
    assert "UPDATE_SERVICE ROLLBACK_SUCCEEDED" in status_render.text(s)


def test_services_that_do_not_answer(world, repo, http):
    stub, aws, envs = world
    http.codes.update(production=503)  # the process answers, the database does not
    digest = push_image("build-of-develop")
    sha = repo.git("rev-parse", "develop")
    expect_running(stub, envs["staging"], url=closed_port_url(), digest=digest, commit=sha, ops=[])
    expect_running(stub, envs["production"], url=f"{http.base}/production", digest=digest, commit=sha, ops=[])
    expect_gate_describe(stub, envs["production"], url=f"{http.base}/production", digest=digest, commit=sha)
    s = collect(repo, envs, aws)
    staging, production = s["environments"]["staging"], s["environments"]["production"]
    assert staging["ready"]["ok"] is False and staging["ready"]["http_status"] is None
    assert "did not answer (ConnectionError)" in staging["ready"]["detail"]
    assert production["ready"] == {"ok": False, "http_status": 503, "detail": "/readyz answered 503"}
    assert production["history"]["entry"] is None  # it runs a digest its history never recorded
    shown = status_render.text(s)
    assert "NOT READY (did not answer (ConnectionError))" in shown
    assert "NOT READY (/readyz answered 503)" in shown
    assert "NOT IN THE PRODUCTION HISTORY" in shown
    assert "NOT VALID: no staging-validated record for tree" in shown


@pytest.mark.usefixtures("no_aws")
def test_no_credentials_shows_what_git_knows_and_one_line(repo, capsys):
    assert status_mod.main(["--json"], repo=repo.path) == 0
    s = json.loads(capsys.readouterr().out)
    assert len(s["unread"]) == 1 and s["unread"][0].startswith("AWS credentials are missing")
    assert s["git"]["develop"] == {"ref": "develop", "sha": repo.git("rev-parse", "develop")}
    n = s["not_in_production"]
    assert (n["base_is"], n["count"], n["commits"][0]["subject"]) == ("main", 1, "feature A")
    assert s["promotion"]["verdict"] == "unknown" and s["promotion"]["gates"] == []
    assert s["promotion"]["tree"] == repo.tree()  # develop merged into main: develop's tree
    assert status_mod.main([], repo=repo.path) == 0
    shown = capsys.readouterr().out
    assert sum(line.startswith("could not read:") for line in shown.splitlines()) == 1
    assert "1 commit(s) on develop that main (git alone) does not run:" in shown


def test_a_role_that_may_not_read_staging_says_so_once(world, repo, http):
    stub, aws, envs = world
    stub.add_response(
        "list_services",
        {"ServiceSummaryList": [{"ServiceName": "mv-os-backend-staging", "ServiceArn": service_arn("staging")}]},
        {"MaxResults": 20},
    )
    stub.add_client_error("describe_service", "AccessDeniedException", "not authorized", 400)
    expect_no_service(stub)
    expect_no_service(stub)
    s = collect(repo, envs, aws)
    assert s["unread"] == ["staging service mv-os-backend-staging (AccessDeniedException)"]
    assert s["environments"]["production"]["deployed"] is False
    assert "could not read: staging service mv-os-backend-staging (AccessDeniedException)" in status_render.text(s)


def test_when_production_cannot_be_read_the_verdict_is_unknown_not_refused(world, repo, http):
    stub, aws, envs = world
    expect_no_service(stub)  # staging
    stub.add_response(
        "list_services",
        {"ServiceSummaryList": [{"ServiceName": "mv-os-backend", "ServiceArn": service_arn("production")}]},
        {"MaxResults": 20},
    )
    stub.add_client_error("describe_service", "AccessDeniedException", "not authorized", 400)
    stub.add_client_error("describe_service", "AccessDeniedException", "not authorized", 400)  # the gate's
    s = collect(repo, envs, aws)
    assert s["unread"] == ["production service mv-os-backend (AccessDeniedException)"]
    assert s["promotion"]["verdict"] == "unknown"
    assert gate(s, "no-operation-in-progress")["line"].startswith("FAIL no-operation-in-progress: could not read")
    assert "UNKNOWN (see `could not read`)" in status_render.text(s)


def test_markdown_has_one_table_and_the_gate_lines(world, repo, http):
    s, _ = _staging_ahead(world, repo, http)
    md = status_render.markdown(s)
    assert "| | staging | production |" in md
    assert "| record | valid (run octo/mv-os/actions/runs/111/attempts/1) |  |" in md
    assert "```\nPASS branch (main -> production" in md
    assert md.count("```") == 2


def test_only_reads_and_the_plan_role_lacks_only_the_staging_service(world, repo, http):
    """Every AWS call status makes is a read, and the production plan role (infra/iam) allows each of them but
    describing the staging service and its operations (see docs/release.md, Status)."""
    _, aws, _ = world
    calls: list[tuple[str, str]] = []

    def arn_of(service_name: str, operation: str, params: dict) -> str:
        acc = "ACCOUNT_ID"
        if service_name == "apprunner":
            return params.get("ServiceArn", "*").replace(ACCOUNT, acc)
        if service_name == "ssm":
            return f"arn:aws:ssm:{REGION}:{acc}:parameter{params.get('Name') or params.get('Path')}"
        if service_name == "ecr":
            return f"arn:aws:ecr:{REGION}:{acc}:repository/{params['repositoryNames'][0]}"
        if service_name == "secretsmanager":
            return secret(params["SecretId"])
        return "*"

    for client in (aws.target.client, aws.ssm, aws.ecr, aws.secretsmanager, aws.sts):
        prefix = client.meta.service_model.signing_name if client is not aws.target.client else "apprunner"

        def seen(params, model, prefix=prefix, **_):
            calls.append((f"{prefix}:{model.name}", arn_of(prefix, model.name, params)))

        client.meta.events.register("before-parameter-build", seen)
    _staging_ahead(world, repo, http)
    assert calls and all(action.split(":")[1].startswith(("Describe", "List", "Get")) for action, _ in calls)
    plan = doc("plan-production.policy.json")
    denied = {c for c in calls if not c[0].startswith("sts:") and not allowed(plan, *c)}
    staging = f"arn:aws:apprunner:{REGION}:ACCOUNT_ID:service/mv-os-backend-staging/0123456789abcdef0123456789abcdef"
    assert denied == {("apprunner:DescribeService", staging), ("apprunner:ListOperations", staging)}


def test_usage():
    assert check("status", []) is None
    assert check("status", ["--json"]) is None
    assert check("status", ["--markdown"]) is None
    assert check("status", ["production"]) == USAGE["status"]
    assert check("status", ["--json", "--markdown"]) == USAGE["status"]


@pytest.mark.usefixtures("no_aws")
def test_a_shallow_ci_checkout_says_what_it_lacks_in_the_same_line(repo, tmp_path, capsys):
    """deploy-staging's jobs check out one commit: status still shows what it can and names the missing history."""
    shallow = tmp_path / "shallow"
    repo.git("clone", "-q", "--depth", "1", "--branch", "develop", f"file://{repo.path}", str(shallow))
    assert status_mod.main(["--json"], repo=shallow) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["unread"][1] == "git history (a shallow clone: the commits and the promotion need fetch-depth 0)"
    assert s["not_in_production"]["count"] is None and s["promotion"]["tree"] is None
    assert s["git"]["develop"]["sha"] == repo.git("rev-parse", "develop")
    assert status_mod.main([], repo=shallow) == 0
    shown = capsys.readouterr().out.splitlines()
    assert [line for line in shown if line.startswith("could not read:")] == [
        f"could not read: {'; '.join(s['unread'])}"
    ]


@pytest.mark.parametrize(("workflow", "job"), [("deploy-production.yml", "gate"), ("deploy-staging.yml", "deploy")])
def test_the_deploy_workflows_append_the_markdown_to_their_summary(workflow, job):
    """The production approvers see status before they approve; staging's summary shows it after the deploy."""
    from tests.workflows.rules import load, steps

    path = Path(__file__).resolve().parents[2] / ".github" / "workflows" / workflow
    step = steps(load(path)["jobs"][job])[-1]
    assert step["run"] == 'python -m nox -s status -- --markdown >> "$GITHUB_STEP_SUMMARY"'
    assert step["continue-on-error"] is True  # a summary never fails a deploy


@pytest.mark.usefixtures("no_aws")
def test_a_long_list_of_commits_is_cut_with_a_count(repo, monkeypatch, capsys):
    monkeypatch.setattr(status_promotion, "COMMIT_LIMIT", 2)
    for n in range(3):
        repo.commit(f"f{n}.txt", f"{n}\n", f"feature {n}")
    assert status_mod.main([], repo=repo.path) == 0
    shown = capsys.readouterr().out
    assert "4 commit(s) on develop that main (git alone) does not run:" in shown
    assert "feature 2 (Release Tests)" in shown and "feature 1 (Release Tests)" in shown
    assert "feature 0" not in shown and "  ... and 2 more" in shown
