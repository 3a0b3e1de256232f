"""The log-retention custom resource's handler (inline in environment.yaml), run against moto's CloudWatch Logs.
Lambda provides `cfnresponse` to inline code; here a stand-in records what would be sent to CloudFormation."""

from __future__ import annotations

import sys
import types

import boto3
import pytest

from scripts.infra.template import TEMPLATES, load
from tests.infra.conftest import REGION

GROUPS = ["/aws/apprunner/mv-os-backend-staging/0123/application", "/aws/apprunner/mv-os-backend-staging/0123/service"]


@pytest.fixture
def handler(aws, monkeypatch):
    sent: list[tuple[str, dict]] = []
    cfnresponse = types.ModuleType("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"
    cfnresponse.send = lambda event, context, status, data, physical_id: sent.append((status, data))
    monkeypatch.setitem(sys.modules, "cfnresponse", cfnresponse)
    code = load(TEMPLATES / "environment.yaml")["Resources"]["LogRetentionFunction"]["Properties"]["Code"]["ZipFile"]
    namespace: dict = {}
    exec(compile(code, "index.py", "exec"), namespace)  # noqa: S102 - the template's own handler, under test
    namespace["handler"].sent = sent
    return namespace["handler"]


def _event(kind: str, days: str = "30") -> dict:
    return {"RequestType": kind, "ResourceProperties": {"LogGroups": GROUPS, "RetentionInDays": days}}


def _retention() -> dict[str, int | None]:
    groups = boto3.client("logs", region_name=REGION).describe_log_groups(logGroupNamePrefix="/aws/apprunner/")
    return {g["logGroupName"]: g.get("retentionInDays") for g in groups["logGroups"]}


def test_create_sets_retention_on_both_groups_whether_or_not_app_runner_made_them(handler):
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=GROUPS[0])  # App Runner was first
    handler(_event("Create"), None)
    assert _retention() == dict.fromkeys(GROUPS, 30)
    assert handler.sent == [("SUCCESS", {"LogGroups": ",".join(GROUPS)})]


def test_update_changes_the_retention(handler):
    handler(_event("Create"), None)
    handler(_event("Update", "90"), None)
    assert _retention() == dict.fromkeys(GROUPS, 90)


def test_delete_keeps_the_logs(handler):
    handler(_event("Create"), None)
    handler(_event("Delete"), None)
    assert _retention() == dict.fromkeys(GROUPS, 30)
    assert handler.sent[-1] == ("SUCCESS", {})


def test_a_failure_is_reported_to_cloudformation_not_left_hanging(handler, capsys):
    event = _event("Create")
    del event["ResourceProperties"]["LogGroups"]
    handler(event, None)
    assert handler.sent == [("FAILED", {})]
    assert "log retention failed: KeyError: 'LogGroups'" in capsys.readouterr().out
    assert _retention() == {}
