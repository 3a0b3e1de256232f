"""Plan and apply as change sets.  moto's CloudFormation runs the shared stack end to end (it creates the ECR
repository and the roles); it cannot execute the environment stack (App Runner, RDS via Fn::Cidr/GetAZs) nor
report replacements, so those paths run against a real boto3 client under botocore's Stubber, which checks
every request and response against the CloudFormation service model."""

from __future__ import annotations

import ast
import datetime as dt
import json

import boto3
import pytest
from botocore.stub import Stubber

from scripts.infra import iam, parameters
from scripts.infra.changeset import TEMPLATE_BODY_LIMIT, ChangeSets, InfraError
from scripts.infra.template import Target, target
from scripts.release.environments import load
from tests.infra.conftest import ACCOUNT, ENVIRONMENT_RESOURCES, IMAGE, REGION, SHARED_RESOURCES
from tests.release.conftest import FakeClock

ENVS = load()
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/mv-os-staging/0123"
CS_ARN = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:changeSet/plan-1/4567"
NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def _staging_params(**overrides) -> list[dict]:
    env = ENVS["staging"]
    params = parameters.environment(env, None, IMAGE)
    params["VarWhatsappPhoneNumberId"] = "100200300400"
    params.update(overrides)
    return parameters.as_boto(params)


def _change(action: str, logical_id: str, kind: str, replacement: str | None = None) -> dict:
    rc = {"Action": action, "LogicalResourceId": logical_id, "ResourceType": kind}
    if replacement:
        rc["Replacement"] = replacement
    return {"Type": "Resource", "ResourceChange": rc}


def _described(changes: list[dict], *, status="CREATE_COMPLETE", execution="AVAILABLE", params=None) -> dict:
    return {
        "ChangeSetName": "plan-1",
        "ChangeSetId": CS_ARN,
        "StackId": STACK_ID,
        "StackName": "mv-os-staging",
        "Status": status,
        "ExecutionStatus": execution,
        "Changes": changes,
        "Parameters": params if params is not None else _staging_params(),
    }


def _stack(status: str) -> dict:
    return {"Stacks": [{"StackName": "mv-os-staging", "StackId": STACK_ID, "CreationTime": NOW, "StackStatus": status}]}


UPDATE = [
    _change("Modify", "Service", "AWS::AppRunner::Service", "False"),
    _change("Modify", "Database", "AWS::RDS::DBInstance", "True"),
    _change("Modify", "VpcConnector", "AWS::AppRunner::VpcConnector", "True"),
    _change("Modify", "JwtSecret", "AWS::SecretsManager::Secret", "Conditional"),
    _change("Remove", "WhatsappAppSecret", "AWS::SecretsManager::Secret"),
    _change("Add", "Extra", "AWS::EC2::SecurityGroup"),
]


@pytest.fixture
def stubbed():
    client = boto3.client("cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _expect_describe(stub, described: dict) -> None:
    stub.add_response("describe_change_set", described, {"ChangeSetName": "plan-1", "StackName": "mv-os-staging"})
    stub.add_response("describe_change_set", described, {"ChangeSetName": CS_ARN})
    stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})


# ---------------------------------------------------------------------------------------------- moto: shared


def test_plan_changes_nothing_and_apply_creates_the_shared_stack(aws):
    cfn, lines = boto3.client("cloudformation", region_name=REGION), []
    changesets = ChangeSets(cfn, out=lines.append, sleep=lambda s: None)
    shared = target("shared")
    plan = changesets.plan(shared, parameters.shared("acme/mv-os"), name="plan-1")
    text = "\n".join(plan.lines())
    assert (
        "(new stack): change set plan-1" in text
        and f"{SHARED_RESOURCES} to create, 0 to change, 0 to replace, 0 to delete" in text
    )
    assert "  create       Repository                       AWS::ECR::Repository" in text
    # A plan creates nothing.
    assert boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"] == []
    assert not [r for r in boto3.client("iam").list_roles()["Roles"] if r["RoleName"].startswith("mv-os-")]

    changesets.apply(shared, "plan-1", allowed=set())
    assert lines[-1] == "mv-os-shared: CREATE_COMPLETE"
    (repo,) = boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"]
    assert (repo["repositoryName"], repo["imageTagMutability"]) == ("mv-os-backend", "IMMUTABLE")
    # The roles AWS now holds are the documents in infra/iam (with the account and repository filled in).
    client = boto3.client("iam")
    documents = iam.documents()

    def filled(name: str) -> dict:
        text = iam.text(documents[name]).replace("ACCOUNT_ID", ACCOUNT).replace("GITHUB_OWNER/mv-os", "acme/mv-os")
        return json.loads(text)

    for role in ("deploy-staging", "deploy-production", "cfn-staging", "infra-production"):
        policy = client.get_role_policy(RoleName=f"mv-os-{role}", PolicyName=role)["PolicyDocument"]
        # moto hands back the document as the repr of a dict
        assert (ast.literal_eval(policy) if isinstance(policy, str) else policy) == filled(f"{role}.policy.json")
        trust = client.get_role(RoleName=f"mv-os-{role}")["Role"]["AssumeRolePolicyDocument"]
        assert trust == filled(f"{role}.trust.json")

    # The same templates and parameters again: nothing to do, and no change set is left behind.
    assert changesets.plan(shared, parameters.shared("acme/mv-os"), name="plan-2") is None
    assert "plan-2" not in {s["ChangeSetName"] for s in cfn.list_change_sets(StackName="mv-os-shared")["Summaries"]}


def test_apply_refuses_a_change_set_of_another_stack(aws):
    cfn = boto3.client("cloudformation", region_name=REGION)
    changesets = ChangeSets(cfn, out=lambda line: None, sleep=lambda s: None)
    plan = changesets.plan(target("shared"), parameters.shared("acme/mv-os"), name="plan-1")
    with pytest.raises(InfraError, match="belongs to mv-os-shared, not mv-os-staging"):
        changesets.apply(target("staging"), plan.change_set, allowed=set())
    assert boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"] == []


def test_a_template_over_the_body_limit_goes_through_the_template_bucket(aws, tmp_path):
    """CreateChangeSet takes 51,200 bytes in TemplateBody: a bigger template is refused with the way out, and
    with --template-bucket it is uploaded to S3 (named by its content) and planned from there."""
    big = tmp_path / "big.yaml"
    padding = {"Notes": " ".join(f"note-{i}" for i in range(9000))}  # about 70 KB of compact JSON
    topic = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "mv-os-big"}}
    big.write_text(
        json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Metadata": padding, "Resources": {"Topic": topic}})
    )
    stack = Target("big", "mv-os-big", big)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="mv-os-cfn-templates")
    lines: list[str] = []
    changesets = ChangeSets(boto3.client("cloudformation", region_name=REGION), s3=s3, out=lines.append)
    with pytest.raises(InfraError, match=r"big.yaml is \d+ bytes, over .* pass --template-bucket BUCKET"):
        changesets.plan(stack, {}, name="plan-1")
    plan = changesets.plan(stack, {}, name="plan-1", template_bucket="mv-os-cfn-templates")
    assert [(c.action, c.logical_id) for c in plan.changes] == [("create", "Topic")]
    (stored,) = s3.list_objects_v2(Bucket="mv-os-cfn-templates")["Contents"]
    assert stored["Key"].startswith("mv-os-templates/mv-os-big/") and lines[0].startswith("template: s3://")
    body = s3.get_object(Bucket="mv-os-cfn-templates", Key=stored["Key"])["Body"].read().decode()
    assert body == stack.body() and len(body.encode()) > TEMPLATE_BODY_LIMIT


def test_plan_of_a_new_environment_lists_everything_it_creates(aws):
    cfn = boto3.client("cloudformation", region_name=REGION)
    env = ENVS["production"]
    plan = ChangeSets(cfn, sleep=lambda s: None).plan(
        target("production"), parameters.environment(env, None, IMAGE), name="plan-1"
    )
    created = {c.logical_id: c.resource_type for c in plan.changes if c.action == "create"}
    assert created["Database"] == "AWS::RDS::DBInstance" and created["Service"] == "AWS::AppRunner::Service"
    assert len(created) == len(plan.changes) == ENVIRONMENT_RESOURCES
    assert boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"] == []


# ---------------------------------------------------------------------------------------- Stubber: updates


def test_plan_output_shouts_replacements_and_deletions_of_what_holds_data(stubbed):
    client, stub = stubbed
    _expect_describe(stub, _described(UPDATE))
    lines: list[str] = []
    with pytest.raises(InfraError) as refused:
        ChangeSets(client, out=lines.append).apply(target("staging"), "plan-1", allowed=set())
    assert lines[0] == "stack mv-os-staging (update): change set plan-1"
    assert lines[1].split() == ["change", "Service", "AWS::AppRunner::Service"]
    assert lines[2].split()[:3] == ["REPLACE", "DATABASE", "AWS::RDS::DBInstance"]
    assert lines[3].split() == ["replace", "VpcConnector", "AWS::AppRunner::VpcConnector"]  # holds no data
    assert lines[4].split()[:2] == ["MAY-REPLACE", "JWTSECRET"]
    assert lines[5].split()[:2] == ["DELETE", "WHATSAPPAPPSECRET"]
    assert lines[6].split() == ["create", "Extra", "AWS::EC2::SecurityGroup"]
    assert lines[7].strip() == "1 to create, 1 to change, 3 to replace, 1 to delete"
    message = str(refused.value)
    assert "Database (AWS::RDS::DBInstance)" in message and "VpcConnector" not in message
    assert "--allow-replace Database --allow-replace JwtSecret --allow-replace WhatsappAppSecret" in message
    # No execute_change_set was stubbed: had apply called it, the Stubber would have failed the test.


def test_apply_executes_a_replacement_that_is_named_explicitly(stubbed):
    client, stub = stubbed
    changes = [UPDATE[0], UPDATE[1]]
    _expect_describe(stub, _described(changes))
    stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ARN, "StackName": "mv-os-staging"})
    stub.add_response("describe_stacks", _stack("UPDATE_IN_PROGRESS"), {"StackName": "mv-os-staging"})
    stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), {"StackName": "mv-os-staging"})
    stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "mv-os-staging"})
    clock, lines = FakeClock(), []
    ChangeSets(client, out=lines.append, sleep=clock.sleep, monotonic=clock.monotonic).apply(
        target("staging"), "plan-1", allowed={"Database"}
    )
    assert lines[-3:] == [
        "mv-os-staging: UPDATE_IN_PROGRESS",
        "mv-os-staging: UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "mv-os-staging: UPDATE_COMPLETE",
    ]
    assert clock.sleeps == [5.0, 5.0]


@pytest.mark.parametrize(
    ("status", "execution"),
    [("CREATE_COMPLETE", "OBSOLETE"), ("CREATE_COMPLETE", "EXECUTE_COMPLETE"), ("FAILED", "UNAVAILABLE")],
)
def test_apply_refuses_a_change_set_that_can_no_longer_run(stubbed, status, execution):
    client, stub = stubbed
    described = _described([UPDATE[0]], status=status, execution=execution)
    stub.add_response("describe_change_set", described, {"ChangeSetName": "plan-1", "StackName": "mv-os-staging"})
    with pytest.raises(InfraError, match=f"is {status}/{execution}: it can no longer be applied"):
        ChangeSets(client, out=lambda line: None).apply(target("staging"), "plan-1", allowed=set())


def test_apply_refuses_a_plan_made_with_placeholder_variables(stubbed):
    client, stub = stubbed
    _expect_describe(stub, _described([UPDATE[0]], params=_staging_params(VarWhatsappPhoneNumberId="<id>")))
    with pytest.raises(InfraError, match="VarWhatsappPhoneNumberId still hold a placeholder"):
        ChangeSets(client, out=lambda line: None).apply(target("staging"), "plan-1", allowed=set())


def test_a_failed_apply_names_the_resource_that_failed(stubbed):
    client, stub = stubbed
    _expect_describe(stub, _described([UPDATE[0]]))
    stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ARN, "StackName": "mv-os-staging"})
    stub.add_response("describe_stacks", _stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": "mv-os-staging"})
    event = {"StackId": STACK_ID, "EventId": "1", "StackName": "mv-os-staging", "Timestamp": NOW}
    stub.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {**event, "LogicalResourceId": "mv-os-staging", "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE"},
                {
                    **event,
                    "LogicalResourceId": "Service",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "Resource update cancelled",
                },
                {
                    **event,
                    "LogicalResourceId": "Database",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "Invalid DB instance class",
                },
            ]
        },
        {"StackName": "mv-os-staging"},
    )
    with pytest.raises(InfraError, match="ended UPDATE_ROLLBACK_COMPLETE: Database UPDATE_FAILED: Invalid DB instance"):
        ChangeSets(client, out=lambda line: None).apply(target("staging"), "plan-1", allowed=set())


def test_a_stack_that_never_settles_is_given_up_on_within_the_budget(stubbed):
    client, stub = stubbed
    _expect_describe(stub, _described([UPDATE[0]]))
    stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ARN, "StackName": "mv-os-staging"})
    for _ in range(4):
        stub.add_response("describe_stacks", _stack("UPDATE_IN_PROGRESS"), {"StackName": "mv-os-staging"})
    clock = FakeClock()
    changesets = ChangeSets(
        client, out=lambda line: None, sleep=clock.sleep, monotonic=clock.monotonic, apply_timeout=15
    )
    with pytest.raises(InfraError, match="still UPDATE_IN_PROGRESS after 15s"):
        changesets.apply(target("staging"), "plan-1", allowed=set())
    assert clock.now == 15.0
