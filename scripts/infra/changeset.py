"""Plan and apply a stack as a CloudFormation change set (boto3 `cloudformation` client).

`plan` creates a change set and prints it: what would be created, changed, replaced or deleted, with the
replacement or deletion of anything that holds data in capitals.  A change set changes nothing until executed.
`apply` executes only a change set `plan` made (by its ARN, so the reviewed plan is the applied one), and
refuses one that would replace or delete something stateful unless that resource is named with --allow-replace.
Every wait is bounded; sleep and clock are injected so tests run the loops instantly."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from scripts.infra.parameters import as_boto, placeholders
from scripts.infra.template import Target

# Resources whose replacement or deletion loses data or breaks every running session.
STATEFUL = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::ECR::Repository",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
    }
)
TEMPLATE_BODY_LIMIT = 51_200  # CreateChangeSet's TemplateBody limit, in bytes
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
STACK_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}

Out = Callable[[str], None]


class InfraError(Exception):
    """A plan or apply could not go on; the message says why and what to do."""


@dataclass(frozen=True)
class Change:
    action: str  # create, change, replace, may-replace, delete, import
    logical_id: str
    resource_type: str
    physical_id: str = ""

    @property
    def stateful(self) -> bool:
        return self.resource_type in STATEFUL

    @property
    def destructive(self) -> bool:
        return self.action in ("replace", "may-replace", "delete")

    def line(self) -> str:
        loud = self.stateful and self.destructive
        action = self.action.upper() if loud else self.action
        name = self.logical_id.upper() if loud else self.logical_id
        note = "  <- holds data: needs --allow-replace " + self.logical_id if loud else ""
        return f"  {action:<12} {name:<32} {self.resource_type}{note}"

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Change:
        rc = raw.get("ResourceChange", {})
        action = {"Add": "create", "Remove": "delete", "Import": "import"}.get(rc.get("Action", ""), "change")
        if rc.get("Action") == "Modify":
            action = {"True": "replace", "Conditional": "may-replace"}.get(rc.get("Replacement", ""), "change")
        return cls(
            action, rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?"), rc.get("PhysicalResourceId") or ""
        )


@dataclass(frozen=True)
class Plan:
    stack: str
    change_set: str  # ARN
    name: str
    kind: str  # CREATE or UPDATE
    changes: tuple[Change, ...]
    parameters: dict[str, str]

    def lines(self) -> list[str]:
        counts = {a: sum(c.action == a for c in self.changes) for a in ("create", "change", "replace", "delete")}
        counts["replace"] += sum(c.action == "may-replace" for c in self.changes)
        kind = "new stack" if self.kind == "CREATE" else "update"
        head = f"stack {self.stack} ({kind}): change set {self.name}"
        tail = ", ".join(f"{n} to {a}" for a, n in counts.items())
        return [head, *(c.line() for c in self.changes), f"  {tail}"]

    def blocked(self, allowed: set[str]) -> list[Change]:
        return [c for c in self.changes if c.stateful and c.destructive and c.logical_id not in allowed]

    def markdown(self, environment: str) -> str:
        rows = "\n".join(
            f"| {c.action.upper() if c.stateful and c.destructive else c.action} | `{c.logical_id}` | "
            f"`{c.resource_type}` |"
            for c in self.changes
        )
        return (
            f"### Infrastructure plan: {environment} (`{self.stack}`)\n\n"
            f"{self.lines()[-1].strip()}\n\n| action | resource | type |\n|---|---|---|\n{rows}\n\n"
            f"Change set: `{self.name}`\n"
        )


class ChangeSets:
    def __init__(
        self,
        client,
        *,
        s3=None,
        out: Out = print,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        poll: float = 5.0,
        plan_timeout: float = 600.0,
        apply_timeout: float = 7200.0,
    ):
        self.client = client
        self.s3 = s3
        self.out = out
        self.sleep = sleep
        self.monotonic = monotonic
        self.poll = poll
        self.plan_timeout = plan_timeout
        self.apply_timeout = apply_timeout

    # -- plan ---------------------------------------------------------------------------------------
    def stack_status(self, stack: str) -> str | None:
        try:
            return self.client.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except ClientError as exc:
            if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
                return None
            raise

    def plan(
        self,
        target: Target,
        params: dict[str, str],
        *,
        name: str,
        role_arn: str | None = None,
        template_bucket: str | None = None,
    ) -> Plan | None:
        """Create a change set for `target` and describe it; None when the stack already matches.  With a
        template bucket the template goes to S3 and CloudFormation reads it from there (TemplateURL)."""
        template = self._template(target, template_bucket)
        status = self.stack_status(target.stack)
        kind = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
        if status is not None and status.endswith("_IN_PROGRESS") and kind == "UPDATE":
            raise InfraError(f"{target.stack} is {status}: wait for it to finish, then plan again")
        if status == "ROLLBACK_COMPLETE":
            raise InfraError(f"{target.stack} failed its first create (ROLLBACK_COMPLETE): delete it, then plan")
        request: dict[str, Any] = {
            "StackName": target.stack,
            "ChangeSetName": name,
            "ChangeSetType": kind,
            **template,
            "Parameters": as_boto(params),
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Tags": [{"Key": "mv-os:environment", "Value": target.name}],
            "Description": f"nox -s infra -- plan {target.name}",
        }
        if role_arn:
            request["RoleARN"] = role_arn
        try:
            arn = self.client.create_change_set(**request)["Id"]
        except ClientError as exc:
            # CloudFormation reports "no changes" as a FAILED change set; some endpoints refuse the request.
            if any(text in exc.response.get("Error", {}).get("Message", "") for text in NO_CHANGES):
                return None
            raise
        described = self._wait_for_change_set(arn)
        if described["Status"] == "FAILED":
            reason = described.get("StatusReason", "")
            self.client.delete_change_set(ChangeSetName=arn)
            if any(text in reason for text in NO_CHANGES):
                return None
            raise InfraError(f"CloudFormation could not make the change set: {reason}")
        return self.describe(arn)

    def _template(self, target: Target, bucket: str | None) -> dict[str, str]:
        """TemplateBody, or TemplateURL of a copy in `bucket` (named by its content, so a plan's template is
        never overwritten): CreateChangeSet takes 51,200 bytes in the body and 1 MB from S3."""
        body = target.body()
        size = len(body.encode())
        if bucket is None:
            if size > TEMPLATE_BODY_LIMIT:
                raise InfraError(
                    f"{target.template.name} is {size} bytes, over CreateChangeSet's {TEMPLATE_BODY_LIMIT}-byte "
                    "TemplateBody: pass --template-bucket BUCKET (an S3 bucket in the stack's region)"
                )
            return {"TemplateBody": body}
        if self.s3 is None:
            raise InfraError("a template bucket needs an S3 client")
        key = f"mv-os-templates/{target.stack}/{hashlib.sha256(body.encode()).hexdigest()[:20]}.json"
        self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
        region = self.s3.meta.region_name
        self.out(f"template: s3://{bucket}/{key} ({size} bytes)")
        return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}

    def _wait_for_change_set(self, arn: str) -> dict[str, Any]:
        deadline = self.monotonic() + self.plan_timeout
        while True:
            described = self.client.describe_change_set(ChangeSetName=arn)
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            if self.monotonic() >= deadline:
                raise InfraError(f"change set {arn} still {described['Status']} after {self.plan_timeout:.0f}s")
            self.sleep(self.poll)

    def describe(self, arn: str) -> Plan:
        pages, token = [], None
        while True:
            page = self.client.describe_change_set(ChangeSetName=arn, **({"NextToken": token} if token else {}))
            pages.append(page)
            token = page.get("NextToken")
            if not token:
                break
        first = pages[0]
        stack_status = self.stack_status(first["StackName"])
        return Plan(
            stack=first["StackName"],
            change_set=first.get("ChangeSetId", arn),
            name=first.get("ChangeSetName", arn),
            kind="CREATE" if stack_status in (None, "REVIEW_IN_PROGRESS") else "UPDATE",
            changes=tuple(Change.from_api(c) for page in pages for c in page.get("Changes", [])),
            parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in first.get("Parameters", [])},
        )

    # -- apply --------------------------------------------------------------------------------------
    def apply(
        self,
        target: Target,
        change_set: str,
        *,
        allowed: set[str],
        check: Callable[[Plan], list[str]] = lambda plan: [],
    ) -> None:
        """Execute the reviewed change set `change_set` (its name or ARN) on `target`'s stack and wait for the
        stack.  `check` may veto it (e.g. the service was deployed since the plan) by returning problems."""
        try:
            described = self.client.describe_change_set(ChangeSetName=change_set, StackName=target.stack)
        except ClientError as exc:
            raise InfraError(f"no change set {change_set} on {target.stack}: plan first ({_code(exc)})") from None
        if described.get("StackName") != target.stack:
            raise InfraError(f"change set {change_set} belongs to {described['StackName']}, not {target.stack}")
        if described.get("ExecutionStatus") != "AVAILABLE" or described["Status"] != "CREATE_COMPLETE":
            raise InfraError(
                f"change set {change_set} is {described['Status']}/{described.get('ExecutionStatus')}: it can no "
                "longer be applied (the stack changed since the plan, or it ran already); plan again"
            )
        plan = self.describe(described.get("ChangeSetId", change_set))
        for line in plan.lines():
            self.out(line)
        problems = check(plan)
        if problems:
            raise InfraError("; ".join(problems) + ": plan again")
        unfilled = placeholders(plan.parameters)
        if unfilled:
            raise InfraError(
                f"{', '.join(unfilled)} still hold a placeholder: fill them in env/environments.toml and plan again"
            )
        blocked = plan.blocked(allowed)
        if blocked:
            names = " ".join(f"--allow-replace {c.logical_id}" for c in blocked)
            raise InfraError(
                "refusing to replace or delete what holds data: "
                + ", ".join(f"{c.logical_id} ({c.resource_type})" for c in blocked)
                + f".  If that loss is intended (a snapshot exists), apply again with {names}"
            )
        self.client.execute_change_set(ChangeSetName=plan.change_set, StackName=target.stack)
        self.out(f"executing {plan.change_set}")
        self._wait_for_stack(target.stack)

    def _wait_for_stack(self, stack: str) -> None:
        deadline = self.monotonic() + self.apply_timeout
        last = None
        while True:
            status = self.stack_status(stack) or "DELETED"
            if status != last:
                self.out(f"{stack}: {status}")
                last = status
            if status in STACK_DONE:
                return
            if not status.endswith("_IN_PROGRESS"):
                raise InfraError(f"{stack} ended {status}: {self._first_failure(stack)}")
            if self.monotonic() >= deadline:
                raise InfraError(f"{stack} still {status} after {self.apply_timeout:.0f}s; see the stack's events")
            self.sleep(self.poll)

    def _first_failure(self, stack: str) -> str:
        events = self.client.describe_stack_events(StackName=stack).get("StackEvents", [])
        failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
        if not failed:
            return "no failed resource reported"
        first = failed[-1]  # events are newest first: the last failure listed is the one that started it
        return f"{first.get('LogicalResourceId')} {first.get('ResourceStatus')}: {first.get('ResourceStatusReason')}"


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "error")
