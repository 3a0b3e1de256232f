"""The release flows on either deploy target: staging moves to ECS Express Mode by switching `target` alone, the
deploy/rollback paths hold there, the audit reads both targets, and every refusal of the release battery holds on
both (a Stubber'd client rejects any call not expected, so a refused deploy provably sent nothing)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import ANY

from scripts.release import flows, targets
from scripts.release.audit import audit
from scripts.release.environments import DefinitionError, load
from scripts.release.record import ProductionHistory, StagingRecord
from scripts.release.targets.ecs_express import EcsExpressTarget
from tests.release.conftest import (
    REGION,
    ROOT_TOML,
    aws_clients,
    context,
    create_repository,
    create_secrets,
    expect_service,
    express_target,
    image_ref,
    push_image,
    smoke_fails,
    smoke_passes,
)
from tests.release.express import (
    ecs_arn,
    expect_deployment,
    expect_express,
    expect_update,
    on_ecs,
    revision_arn,
)


def filled(env):
    return dataclasses.replace(env, variables={**env.variables, "WHATSAPP_PHONE_NUMBER_ID": "100000000000001"})


@pytest.fixture
def world(moto, ecs, clock):
    create_repository()
    return {"old": push_image("build-old"), "new": push_image("build-new"), "stub": ecs[1], "client": ecs[0]}


def switched(tmp_path, target: str) -> dict:
    """env/environments.toml with staging's `target` line changed and nothing else."""
    text = ROOT_TOML.read_text()
    line = 'target = "apprunner"                # "apprunner" or "ecs-express": the one line that moves staging'
    assert text.count(line) == 1
    path = tmp_path / "environments.toml"
    path.write_text(text.replace(line, line.replace('"apprunner"', f'"{target}"', 1)))
    return load(path)


def test_switching_staging_target_alone_plans_and_deploys_on_ecs_express(tmp_path, world, repo, clock, capsys):
    envs = switched(tmp_path, "ecs-express")
    staging = filled(envs["staging"])
    assert staging.target == "ecs-express" and envs["production"].target == "apprunner"
    connected = targets.connect(staging, boto3.session.Session(region_name=REGION), None)
    assert isinstance(connected, EcsExpressTarget) and connected.cluster == "mv-os-staging"
    assert connected.client.meta.service_model.service_name == "ecs"
    lines: list[str] = []
    flows.plan(context(staging, repo, image_ref(world["new"])), out=lines.append)
    assert "ecs-express: update_express_gateway_service request (secrets by ARN, never by value):" in lines
    assert any('"cpu": "1024"' in line for line in lines)

    create_secrets(staging)
    stub = world["stub"]
    expect_express(stub, staging, digest=world["old"])
    expect_update(stub, staging, image_ref(world["new"]), 2, {**_update_shape(staging, world["new"])})
    expect_deployment(stub, staging, 2, "IN_PROGRESS", "SUCCESSFUL")
    aws = aws_clients(express_target(world["client"], clock, staging))
    lines = []
    assert flows.deploy(context(staging, repo, image_ref(world["new"]), aws), out=lines.append, smoke=smoke_passes) == 0
    assert f"update_express_gateway_service: operation {revision_arn(staging, 2)} deploys {world['new']}" in "\n".join(
        lines
    )
    assert any("passed smoke; the record job" in line for line in lines)


def _update_shape(env, digest):
    return {
        "serviceArn": ecs_arn(env),
        "executionRoleArn": ANY,
        "taskRoleArn": ANY,
        "healthCheckPath": "/readyz",
        "primaryContainer": ANY,
        "cpu": "1024",
        "memory": "2048",
    }


def test_a_target_outside_the_known_two_or_in_the_wrong_units_stops_loading(tmp_path):
    with pytest.raises(DefinitionError, match="is not one of apprunner, ecs-express"):
        switched(tmp_path, "lambda")
    text = ROOT_TOML.read_text().replace('cpu = "1024"', 'cpu = "1 vCPU"', 1)
    (tmp_path / "units.toml").write_text(text)
    with pytest.raises(DefinitionError, match=r"staging\.ecs-express\.cpu is missing or not in ecs-express's units"):
        load(tmp_path / "units.toml")


def _on_main_validated(repo, digest):
    StagingRecord(boto3.client("ssm", region_name=REGION)).write(
        repo.tree(), digest, repo.git("rev-parse", "HEAD"), "t"
    )
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge develop", "develop")


def _production_on_ecs_deploys_new(world, repo, production):
    """Production on ECS Express, running the old build; main holds a tree staging validated with the new one;
    the deploy's update is expected (deployment of revision 2)."""
    env = on_ecs(production)
    create_secrets(env)
    _on_main_validated(repo, world["new"])
    expect_express(world["stub"], env, digest=world["old"])
    expect_update(world["stub"], env, image_ref(world["new"]), 2, _update_shape(env, world["new"]))
    return env, world["stub"]


def test_production_on_ecs_a_rollback_by_ecs_is_a_failed_deploy(world, repo, production, clock):
    env, stub = _production_on_ecs_deploys_new(world, repo, production)
    expect_deployment(stub, env, 2, "IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL")
    lines: list[str] = []
    aws = aws_clients(express_target(world["client"], clock, env))
    assert flows.deploy(context(env, repo, image_ref(world["new"]), aws), out=lines.append, smoke=smoke_passes) == 1
    assert "ECS rolled the deployment back" in lines[-1] and world["old"] in lines[-1]
    assert ProductionHistory(aws.ssm).latest() is None, "a failed deploy never enters the history"


def test_production_on_ecs_smoke_failure_rolls_back_to_the_previous_digest(world, repo, production, clock):
    env, stub = _production_on_ecs_deploys_new(world, repo, production)
    expect_deployment(stub, env, 2, "SUCCESSFUL")
    back = {"serviceArn": ecs_arn(env), "primaryContainer": {**ANY_CONTAINER, "image": image_ref(world["old"])}}
    expect_update(stub, env, image_ref(world["old"]), 3, back)
    expect_deployment(stub, env, 3, "SUCCESSFUL")
    lines: list[str] = []
    aws = aws_clients(express_target(world["client"], clock, env))
    assert flows.deploy(context(env, repo, image_ref(world["new"]), aws), out=lines.append, smoke=smoke_fails) == 1
    assert lines[-1] == f"rolled back: production smoke failed for {world['new']}; production runs {world['old']} again"
    latest = ProductionHistory(aws.ssm).latest()
    assert latest.digest == world["old"] and latest.kind == "rollback"
    assert latest.configuration["RuntimeEnvironmentVariables"]["NODE_ENV"] == "production"


ANY_CONTAINER = {"containerPort": 8080, "environment": ANY, "secrets": ANY, "awsLogsConfiguration": ANY}


# -- the audit on both targets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["apprunner", "ecs-express"])
def test_the_audit_reads_either_target(moto, envs, apprunner, target, ecs, clock, kind):
    create_repository("IMMUTABLE")
    pair = [envs["staging"], envs["production"]]
    if kind == "ecs-express":
        pair = [on_ecs(e) for e in pair]
    arns = {e.name: create_secrets(e) for e in pair}
    aws = {}
    for e in pair:
        # staging's service reads production's JWT secret: the audit must say so on either target.
        secrets = {**arns[e.name], "JWT_SECRET": arns["production"]["JWT_SECRET"]}
        if kind == "ecs-express":
            expect_express(ecs[1], e, secrets=secrets, node_env="staging" if e.name == "production" else None)
            aws[e.name] = aws_clients(express_target(ecs[0], clock, e))
        else:
            expect_service(apprunner[1], e, secrets=secrets, node_env="staging" if e.name == "production" else None)
            aws[e.name] = aws_clients(target)
    results = {r.name: r for r in audit(pair, lambda e: aws[e.name])}
    assert "JWT_SECRET reads mv-os/jwt-secret, outside mv-os/staging/*" in results["service-secrets-staging"].reason
    assert not results["secrets-distinct"].ok
    assert results["node-env-production"].line() == (
        "FAIL node-env-production: mv-os-backend runs NODE_ENV='staging', expected 'production'"
    )
    assert results["node-env-staging"].ok and results["auto-deploy-staging"].ok and results["record-immutable"].ok


# -- the release battery's refusals, on both targets --------------------------------------------------------------
@pytest.fixture(params=["apprunner", "ecs-express"])
def on(request, moto, apprunner, target, ecs, clock):
    """One target: how to switch an environment to it, the AWS clients, and how to expect one describe."""
    if request.param == "apprunner":
        return SimpleNamespace(
            env=lambda e: e,
            aws=lambda e: aws_clients(target),
            expect=lambda e, busy=False, **kw: expect_service(
                apprunner[1], e, status="OPERATION_IN_PROGRESS" if busy else "RUNNING", **kw
            ),
        )
    return SimpleNamespace(
        env=on_ecs,
        aws=lambda e: aws_clients(express_target(ecs[0], clock, e)),
        expect=lambda e, busy=False, **kw: expect_express(ecs[1], e, busy=busy, **kw),
    )


def _refused(on, env, repo, image, *, busy=False, secrets=True, checkout=None) -> list[str]:
    create_repository()
    digest = push_image("build-new")
    if secrets:
        create_secrets(env)
    if checkout:
        repo.git("checkout", "-q", "-b", checkout)
    on.expect(env, busy=busy)
    lines: list[str] = []
    ctx = context(env, repo, image or image_ref(digest), on.aws(env))
    assert flows.deploy(ctx, out=lines.append, smoke=smoke_passes) == 1
    assert lines[-1] == f"deploy REFUSED: nothing was changed on {env.service}"
    return lines


@pytest.mark.parametrize(
    ("case", "fail"),
    [
        ({"checkout": "feature/x"}, "FAIL branch: feature/x may not deploy to staging"),
        ({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mv-os-backend:latest"}, "FAIL image-digest"),
        ({"secrets": False}, "FAIL secrets-namespace"),
        ({"busy": True}, "FAIL no-operation-in-progress: mv-os-backend-staging is still busy"),
        ({"placeholder": True}, "FAIL request: WHATSAPP_PHONE_NUMBER_ID still a placeholder"),
    ],
)
def test_staging_refusals_hold_on_both_targets(on, repo, envs, case, fail):
    case = dict(case)
    env = on.env(load()["staging"] if case.pop("placeholder", False) else envs["staging"])
    lines = _refused(on, env, repo, case.pop("image", None), **case)
    assert any(line.startswith(fail) for line in lines), lines


def test_production_refuses_a_tree_staging_never_validated_on_both_targets(on, repo, envs):
    env = on.env(envs["production"])
    repo.git("checkout", "-q", "main")
    repo.commit("direct.txt", "straight on main\n", "direct commit on main")
    lines = _refused(on, env, repo, None)
    assert any(line.startswith("FAIL staging-validated:") and "through develop" in line for line in lines)
