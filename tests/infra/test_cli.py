"""`nox -s infra -- ...` as a person or the workflow runs it (scripts.infra.cli.main): plan against moto prints
the change set and the command to apply it, writes the job summary and the change set's name for the next job;
against an existing service (Stubber'd App Runner) it keeps the running image, and apply refuses a plan that a
deploy has made stale."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from scripts.infra import diff, parameters
from scripts.infra.cli import main
from scripts.infra.template import target
from scripts.release.environments import load
from scripts.release.targets.apprunner import from_describe
from tests.infra.conftest import ENVIRONMENT_RESOURCES, IMAGE, REGION, SHARED_RESOURCES, Session, on_ecs_express
from tests.infra.test_changeset import CS_ARN, STACK_ID, _described, _stack
from tests.release.conftest import digest_of, expect_service, image_ref, service

ENVS = load()
ENVS_TOML = diff.DEFAULT_PATH


def run(argv: list[str], session) -> tuple[int, list[str]]:
    lines: list[str] = []
    return main(argv, session_for=lambda region: session, out=lines.append), lines


@pytest.mark.parametrize("env", ["staging", "production"])
def test_plan_of_a_new_environment_prints_the_change_set_and_how_to_apply_it(aws, tmp_path, env):
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    code, lines = run(
        ["plan", env, "--image", IMAGE, "--name", "plan-1", "--summary", str(summary), "--github-output", str(output)],
        Session(),
    )
    assert code == 0, lines
    assert lines[0] == (
        "warning: VarWhatsappPhoneNumberId is still a placeholder in env/environments.toml; apply will refuse this plan"
    )
    assert lines[1] == f"stack mv-os-{env} (new stack): change set plan-1"
    assert f"{ENVIRONMENT_RESOURCES} to create, 0 to change, 0 to replace, 0 to delete" in lines[-2]
    assert lines[-1] == f"apply with: nox -s infra -- apply {env} plan-1"
    assert "| create | `Database` | `AWS::RDS::DBInstance` |" in summary.read_text()
    assert output.read_text() == "change-set=plan-1\n"
    # The stack is only under review: nothing was created.
    stack = boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=f"mv-os-{env}")["Stacks"][0]
    assert stack["StackStatus"] == "REVIEW_IN_PROGRESS"


def test_plan_of_a_new_environment_needs_its_first_image(aws):
    code, lines = run(["plan", "staging"], Session())
    assert code == 1
    assert lines == [
        "plan staging: mv-os-backend-staging does not exist yet: pass --image <repository>@sha256:<digest> for its "
        "first version"
    ]


def test_plan_refuses_an_image_from_another_repository(aws):
    code, lines = run(["plan", "staging", "--image", IMAGE.replace("mv-os-backend", "other")], Session())
    assert (code, lines) == (1, ["plan staging: --image must come from mv-os-backend, not other"])


def test_the_shared_stack_needs_the_github_repository(aws, monkeypatch):
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    code, lines = run(["plan", "shared"], Session())
    assert code == 1 and "--github-repository OWNER/NAME" in lines[0]
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/mv-os")
    code, lines = run(["plan", "shared", "--name", "plan-1"], Session())
    assert code == 0 and f"{SHARED_RESOURCES} to create" in lines[-2]


def test_the_shared_stack_can_be_planned_through_a_template_bucket(aws):
    """The way past CreateChangeSet's 51,200-byte body, for when the shared template outgrows it."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="acme-cfn-templates")
    argv = ["plan", "shared", "--github-repository", "acme/mv-os", "--template-bucket", "acme-cfn-templates"]
    code, lines = run(argv, Session())
    assert code == 0 and lines[0].startswith("template: s3://acme-cfn-templates/mv-os-templates/mv-os-shared/")
    assert f"{SHARED_RESOURCES} to create" in lines[-2]


@pytest.fixture
def stubs():
    cfn = boto3.client("cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    apprunner = boto3.client("apprunner", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cfn) as cfn_stub, Stubber(apprunner) as apprunner_stub:
        yield Session(cloudformation=cfn, apprunner=apprunner), cfn_stub, apprunner_stub
        cfn_stub.assert_no_pending_responses()
        apprunner_stub.assert_no_pending_responses()


RUNNING = {"digest": digest_of("running"), "variables": {"GIT_SHA": "a" * 40, "IMAGE_DIGEST": digest_of("running")}}


def test_plan_of_an_existing_environment_keeps_what_the_engine_deployed(aws, stubs):
    """The image and the engine's variables come from the running service, so an infrastructure change never
    changes what runs; when nothing differs the change set is dropped and the plan says so."""
    session, cfn, apprunner = stubs
    env = ENVS["staging"]
    cfn.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})
    expect_service(apprunner, env, **RUNNING)
    running = from_describe(service(env, **RUNNING))
    params = parameters.environment(env, running, None)
    assert params["ImageIdentifier"] == image_ref(digest_of("running")) and params["VarGitSha"] == "a" * 40
    cfn.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})
    cfn.add_response(
        "create_change_set",
        {"Id": CS_ARN, "StackId": STACK_ID},
        {
            "StackName": "mv-os-staging",
            "ChangeSetName": "plan-1",
            "ChangeSetType": "UPDATE",
            "TemplateBody": target("staging").body(),
            "Parameters": parameters.as_boto(params),
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Tags": [{"Key": "mv-os:environment", "Value": "staging"}],
            "Description": "nox -s infra -- plan staging",
            "RoleARN": "arn:aws:iam::123456789012:role/mv-os-cfn-staging",
        },
    )
    no_changes = (
        "The submitted information didn't contain changes. Submit different information to create a change set."
    )
    cfn.add_response(
        "describe_change_set",
        {**_described([], status="FAILED"), "StatusReason": no_changes},
        {"ChangeSetName": CS_ARN},
    )
    cfn.add_response("delete_change_set", {}, {"ChangeSetName": CS_ARN})
    code, lines = run(["plan", "staging", "--name", "plan-1"], session)
    assert (code, lines[-1]) == (0, "no changes: mv-os-staging already matches the template and env/environments.toml")


def test_an_image_is_never_deployed_through_infrastructure(aws, stubs):
    session, cfn, apprunner = stubs
    cfn.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})
    expect_service(apprunner, ENVS["staging"], **RUNNING)
    code, lines = run(["plan", "staging", "--image", IMAGE], session)
    assert (code, lines) == (
        1,
        ["plan staging: mv-os-backend-staging exists: images reach it through `nox -s deploy`, not --image"],
    )


def test_apply_refuses_a_plan_made_stale_by_a_deploy(aws, stubs):
    """A deploy between plan and apply: applying would put the planned (older) image back, so apply stops."""
    session, cfn, apprunner = stubs
    env = ENVS["staging"]
    planned = parameters.environment(env, from_describe(service(env, **RUNNING)), None)
    planned["VarWhatsappPhoneNumberId"] = "100200300400"
    described = _described([], params=parameters.as_boto(planned))
    described["Changes"] = [
        {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Modify",
                "LogicalResourceId": "Service",
                "ResourceType": "AWS::AppRunner::Service",
                "Replacement": "False",
            },
        }
    ]
    cfn.add_response("describe_change_set", described, {"ChangeSetName": "plan-1", "StackName": "mv-os-staging"})
    cfn.add_response("describe_change_set", described, {"ChangeSetName": CS_ARN})
    cfn.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})
    cfn.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})
    newer = {"digest": digest_of("newer"), "variables": {"GIT_SHA": "b" * 40, "IMAGE_DIGEST": digest_of("newer")}}
    expect_service(apprunner, env, **newer)
    code, lines = run(["apply", "staging", "plan-1"], session)
    assert code == 1
    assert lines[-1] == (
        "apply staging: the service was deployed since this plan (ImageIdentifier, VarGitSha, VarImageDigest "
        "changed): plan again"
    )


def test_iam_check_passes_on_the_repository():
    lines: list[str] = []
    assert main(["iam", "--check"], out=lines.append) == 0 and lines == []


def test_unknown_target_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["plan", "local"])
    assert exited.value.code == 2 and "invalid choice: 'local'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ diff (pull requests)


def test_the_offline_diff_shows_what_a_branch_changes(monkeypatch, tmp_path):
    head = target("staging").template.read_text()
    base = head.replace("      DBName: mvos\n", "      DBName: mvos_old\n").replace(
        "  WhatsappVerifyToken:\n",
        "  Retired:\n    Type: AWS::SecretsManager::Secret\n    Properties: {Name: x}\n\n  WhatsappVerifyToken:\n",
        1,
    )
    # Staging's log retention was 14 days at the base (it is 30 now).
    base_toml = diff.DEFAULT_PATH.read_text().replace("log_retention_days = 30", "log_retention_days = 14", 1)
    texts = {"env/environments.toml": base_toml, "infra/cloudformation/environment.yaml": base}
    monkeypatch.setattr(diff, "_git_show", lambda ref, path: texts[path.relative_to(diff.ROOT).as_posix()])
    summary = tmp_path / "summary.md"
    lines: list[str] = []
    assert main(["diff", "staging", "--base", "abc123", "--summary", str(summary)], out=lines.append) == 0
    assert lines[0] == "stack mv-os-staging (update): change set none: offline diff against abc123"
    body = [line.split()[:3] for line in lines[1:-1]]
    # DBName can only change by replacement; a retention (from environments.toml) changes in place.
    assert body == [
        ["REPLACE", "DATABASE", "AWS::RDS::DBInstance"],
        ["change", "LogRetentionFunctionLogs", "AWS::Logs::LogGroup"],
        ["change", "ServiceLogRetention", "Custom::LogRetention"],
        ["DELETE", "RETIRED", "AWS::SecretsManager::Secret"],
    ]
    assert "| REPLACE | `Database` |" in summary.read_text()


def test_the_offline_diff_of_an_unchanged_branch_is_empty(monkeypatch):
    texts = {
        "env/environments.toml": diff.DEFAULT_PATH.read_text(),
        "infra/cloudformation/shared.yaml": target("shared").body(),
    }
    monkeypatch.setattr(diff, "_git_show", lambda ref, path: texts[path.relative_to(diff.ROOT).as_posix()])
    lines: list[str] = []
    assert main(["diff", "shared", "--base", "abc123"], out=lines.append) == 0
    assert lines == ["no changes: mv-os-shared already matches the template and env/environments.toml"]


def test_plan_of_staging_on_ecs_express_creates_the_express_variant(aws, tmp_path):
    toml = on_ecs_express(tmp_path)
    summary = tmp_path / "summary.md"
    argv = ["plan", "staging", "--image", IMAGE, "--name", "plan-1", "--environments", str(toml)]
    code, lines = run([*argv, "--summary", str(summary)], Session())
    assert code == 0, lines
    assert lines[1] == "stack mv-os-staging (new stack): change set plan-1"
    created = summary.read_text()
    for logical_id, kind in [
        ("ExpressService", "AWS::ECS::ExpressGatewayService"),
        ("EcsCluster", "AWS::ECS::Cluster"),
        ("EcsServiceLogs", "AWS::Logs::LogGroup"),
        ("Database", "AWS::RDS::DBInstance"),
    ]:
        assert f"| create | `{logical_id}` | `{kind}` |" in created
    # moto lists every resource of the template whatever its condition; the parameters below are what make
    # CloudFormation create the Express service and not the App Runner one.
    cfn = boto3.client("cloudformation", region_name=REGION)
    sent = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_change_set(StackName="mv-os-staging", ChangeSetName="plan-1")["Parameters"]
    }
    ecs = load(toml)["staging"].targets["ecs-express"]
    assert (sent["Target"], sent["EcsCpu"], sent["EcsMemory"], sent["Cluster"]) == (
        "ecs-express",
        ecs["cpu"],
        ecs["memory"],
        ecs["cluster"],
    )
    assert sent["EcsExecutionRole"] == ecs["execution_role"]


def test_the_offline_diff_of_a_target_switch_moves_only_the_service(monkeypatch, tmp_path):
    """HEAD has staging on ECS Express, the base on App Runner: the network, database and secrets stay."""
    monkeypatch.setattr(diff, "DEFAULT_PATH", on_ecs_express(tmp_path))
    texts = {"environments.toml": ENVS_TOML.read_text(), "environment.yaml": target("staging").template.read_text()}
    monkeypatch.setattr(diff, "_git_show", lambda ref, path: texts[path.name])
    lines: list[str] = []
    assert main(["diff", "staging", "--base", "abc123"], out=lines.append) == 0
    moved = {line.split()[1].lower(): line.split()[0].lower() for line in lines[1:-1]}
    assert moved == {
        "ecscluster": "create",
        "ecsservicelogs": "create",
        "expressservice": "create",
        "publicsubnetb": "create",
        "publicsubnetbroutes": "create",
        "service": "delete",
        "vpcconnector": "delete",
        "servicelogretention": "delete",
        "logretentionfunction": "delete",
        "logretentionfunctionlogs": "delete",
    }


def test_keeping_app_runner_during_a_move_only_adds_the_express_service(monkeypatch, tmp_path):
    """Step 1 of a move without downtime: both services run until the DNS name points at the new one."""
    moving = on_ecs_express(tmp_path)
    text = moving.read_text().replace(
        "[infrastructure.staging]\n", "[infrastructure.staging]\nkeep_apprunner = true\n", 1
    )
    moving.write_text(text)
    monkeypatch.setattr(diff, "DEFAULT_PATH", moving)
    texts = {"environments.toml": ENVS_TOML.read_text(), "environment.yaml": target("staging").template.read_text()}
    monkeypatch.setattr(diff, "_git_show", lambda ref, path: texts[path.name])
    lines: list[str] = []
    assert main(["diff", "staging", "--base", "abc123"], out=lines.append) == 0
    actions = {line.split()[1]: line.split()[0] for line in lines[1:-1]}
    assert actions == {
        "EcsCluster": "create",
        "EcsServiceLogs": "create",
        "ExpressService": "create",
        "PublicSubnetB": "create",
        "PublicSubnetBRoutes": "create",
    }
