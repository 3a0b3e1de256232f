"""The templates: cfn-lint finds nothing, they are plain YAML under CloudFormation's size limit, every parameter
is fed from env/environments.toml, and they create exactly the names the release engine (audit, deploy) reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.infra import parameters
from scripts.infra.changeset import TEMPLATE_BODY_LIMIT
from scripts.infra.template import TEMPLATES, conditions, evaluate, load, select, target
from scripts.release.environments import load as load_environments
from scripts.release.targets.base import ENGINE_VARIABLES
from tests.infra.conftest import IMAGE, on_ecs_express

ENVS = load_environments()
FILES = sorted(TEMPLATES.glob("*.yaml"))


def _cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert exe, "cfn-lint is not installed (requirements/test.txt)"
    return subprocess.run([exe, *map(str, paths)], capture_output=True, text=True, timeout=300, check=False)


def test_cfn_lint_finds_nothing_in_any_template():
    assert {p.name for p in FILES} == {"shared.yaml", "environment.yaml"}
    result = _cfn_lint(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_rejects_a_broken_template(tmp_path):
    """The same check fails on a template CloudFormation would reject (a tag mutability that does not exist)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "Resources:\n  Repository:\n    Type: AWS::ECR::Repository\n    Properties:\n"
        "      ImageTagMutability: SOMETIMES\n"
    )
    result = _cfn_lint(broken)
    assert result.returncode != 0 and "SOMETIMES" in result.stdout


@pytest.mark.parametrize("name", ["shared", "staging", "production"])
def test_templates_are_plain_yaml_within_the_size_limit(name):
    """Long-form intrinsics only, so every YAML tool reads them; what CreateChangeSet receives (compact JSON) is
    the same template and fits its 51,200 bytes."""
    stack = target(name)
    assert yaml.safe_load(stack.template.read_text()) == json.loads(stack.body())
    size = len(stack.body().encode())
    # Over it, `plan` needs --template-bucket (docs/aws-setup.md, step 2): decide that on purpose, not by accident.
    assert size <= TEMPLATE_BODY_LIMIT, f"{name}: {size} bytes; see docs/aws-setup.md on --template-bucket"


def _declared(name: str) -> set[str]:
    return set(load(TEMPLATES / name)["Parameters"])


def _required(name: str) -> set[str]:
    return {k for k, v in load(TEMPLATES / name)["Parameters"].items() if "Default" not in v}


def test_every_shared_parameter_comes_from_environments_toml():
    assert set(parameters.shared("acme/mv-os")) == _declared("shared.yaml")


@pytest.mark.parametrize("env", ["staging", "production"])
def test_every_environment_parameter_comes_from_environments_toml(env, tmp_path):
    on_apprunner = set(parameters.environment(ENVS[env], None, IMAGE))
    ecs_env = load_environments(on_ecs_express(tmp_path, env))[env]
    on_ecs = set(parameters.environment(ecs_env, None, IMAGE))
    # keep_apprunner is set only during a move (its default, false, applies otherwise).
    # Production has no smoke user: its two parameters keep their empty defaults.
    smoke = {"SecretSmokeUserPassword", "VarSmokeUserEmail"} if env == "production" else set()
    assert on_ecs == _declared("environment.yaml") - {"KeepAppRunner"} - smoke
    # On App Runner the ECS Express settings stay at their empty defaults: that stack has no ECS resource.
    assert _required("environment.yaml") <= on_apprunner
    ecs_only = {"EcsCpu", "EcsMemory", "Cluster", "EcsExecutionRole", "EcsTaskRole", "EcsInfrastructureRole"}
    assert on_ecs - on_apprunner == ecs_only


def _resolved(env: str, e=None) -> tuple[dict, dict]:
    """The environment stack's resources as CloudFormation makes them (every Fn::If decided), and the names."""
    params = parameters.environment(e or ENVS[env], None, IMAGE)
    template = load(TEMPLATES / "environment.yaml")
    defaults = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    names = {**defaults, **params, "AWS::AccountId": "ACCOUNT_ID", "AWS::Region": ENVS[env].region}
    resources = select(template["Resources"], conditions(template, names))
    return resources, names


def _active(resources: dict, target: str, keep: str = "false", names: dict | None = None) -> set[str]:
    """The resources a stack on `target` has (CloudFormation drops those whose condition is false)."""
    on = conditions(load(TEMPLATES / "environment.yaml"), {**(names or {}), "Target": target, "KeepAppRunner": keep})
    return {name for name, r in resources.items() if on.get(r.get("Condition", ""), True)}


@pytest.mark.parametrize("env", ["staging", "production"])
def test_each_target_gets_its_own_service_and_shares_network_database_and_secrets(env):
    resources, names = _resolved(env)
    on_apprunner, on_ecs = _active(resources, "apprunner", names=names), _active(resources, "ecs-express", names=names)
    # While the environment moves, both services run side by side on the same network, database and secrets.
    assert _active(resources, "ecs-express", keep="true", names=names) == on_apprunner | on_ecs
    # Only staging has a smoke user (production's app refuses SMOKE_USER_PASSWORD).
    assert ("SmokeUserPassword" in on_apprunner & on_ecs) == (env == "staging")
    assert {"Service", "VpcConnector", "ServiceLogRetention"} <= on_apprunner - on_ecs
    assert on_ecs - on_apprunner == {
        "EcsCluster",
        "EcsServiceLogs",
        "ExpressService",
        "PublicSubnetB",
        "PublicSubnetBRoutes",
    }
    # One definition of what must survive a move between targets.
    for shared in ("Vpc", "Database", "DatabaseSecurityGroup", "ConnectorSecurityGroup", "DatabaseUrlSecret"):
        assert shared in on_apprunner & on_ecs


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_express_service_is_the_one_the_engine_deploys_and_audits(env, tmp_path):
    e = load_environments(on_ecs_express(tmp_path, env))[env]
    ecs = e.targets["ecs-express"]
    resources, names = _resolved(env, e)
    names.update({"EcsCluster": ecs["cluster"], "EcsServiceLogs": f"/aws/ecs/{ecs['cluster']}/{e.service}"})
    service = resources["ExpressService"]["Properties"]
    assert evaluate(service["ServiceName"], names) == e.service
    assert evaluate(service["Cluster"], names) == ecs["cluster"]
    assert resources["EcsCluster"]["Properties"]["ClusterName"] == {"Ref": "Cluster"}
    assert (evaluate(service["Cpu"], names), evaluate(service["Memory"], names)) == (ecs["cpu"], ecs["memory"])
    assert evaluate(service["HealthCheckPath"], names) == e.health_check_path
    for key, role in (("ExecutionRoleArn", "execution_role"), ("TaskRoleArn", "task_role")):
        assert evaluate(service[key], names) == f"arn:aws:iam::ACCOUNT_ID:role/{ecs[role]}"
    assert (
        evaluate(service["InfrastructureRoleArn"], names)
        == f"arn:aws:iam::ACCOUNT_ID:role/{ecs['infrastructure_role']}"
    )
    container = service["PrimaryContainer"]
    # By digest, never a tag (audit: auto-deploy-<env> on ECS).
    assert "@sha256:" in evaluate(container["Image"], names)
    assert evaluate(container["ContainerPort"], names) == str(e.port)
    variables = {v["Name"]: evaluate(v["Value"], names) for v in container["Environment"]}
    assert variables["NODE_ENV"] == e.node_env
    assert set(variables) == {"NODE_ENV", *e.variables, *ENGINE_VARIABLES}
    # Secrets by full ARN: Ref of each of this stack's secrets, named as environments.toml says.
    secrets = {s["Name"]: s["ValueFrom"]["Ref"] for s in container["Secrets"]}
    assert set(secrets) == set(e.secrets)
    for var, logical_id in secrets.items():
        assert resources[logical_id]["Type"] == "AWS::SecretsManager::Secret"
        assert evaluate(resources[logical_id]["Properties"]["Name"], names) == e.secrets[var]
    # The log group the deploy role reads on a failure, kept as long as the environment's other logs.
    logs = resources["EcsServiceLogs"]["Properties"]
    assert evaluate(logs["LogGroupName"], names) == f"/aws/ecs/{ecs['cluster']}/{e.service}"
    assert evaluate(logs["RetentionInDays"], names) == parameters.sizes(env)["LogRetentionDays"]
    assert evaluate(container["AwsLogsConfiguration"]["LogGroup"], names) == evaluate(logs["LogGroupName"], names)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_service_is_the_one_the_engine_deploys_and_audits(env):
    e = ENVS[env]
    resources, names = _resolved(env)
    service = resources["Service"]["Properties"]
    assert evaluate(service["ServiceName"], names) == e.service
    source = service["SourceConfiguration"]
    assert source["AutoDeploymentsEnabled"] is False  # audit: auto-deploy-<env>
    config = source["ImageRepository"]["ImageConfiguration"]
    assert evaluate(config["Port"], names) == str(e.port)
    variables = {v["Name"]: evaluate(v["Value"], names) for v in config["RuntimeEnvironmentVariables"]}
    assert variables["NODE_ENV"] == e.node_env  # audit: node-env-<env>
    assert set(variables) == {"NODE_ENV", *e.variables, *ENGINE_VARIABLES}
    for var, value in e.variables.items():
        assert variables[var] == value
    # Each secret is a resource of this stack whose name is the one environments.toml gives (audit: secrets-<env>).
    secrets = {s["Name"]: s["Value"]["Ref"] for s in config["RuntimeEnvironmentSecrets"]}
    assert set(secrets) == set(e.secrets)
    for var, logical_id in secrets.items():
        assert evaluate(resources[logical_id]["Properties"]["Name"], names) == e.secrets[var]
        assert e.secret_name_allowed(e.secrets[var])
    instance = service["InstanceConfiguration"]
    assert (evaluate(instance["Cpu"], names), evaluate(instance["Memory"], names)) == (
        e.targets["apprunner"]["cpu"],
        e.targets["apprunner"]["memory"],
    )
    assert evaluate(instance["InstanceRoleArn"], names).endswith(f":role/mv-os-apprunner-instance-{env}")
    assert evaluate(service["HealthCheckConfiguration"]["Path"], names) == e.health_check_path


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_database_is_private_encrypted_backed_up_and_tls_only(env):
    resources, names = _resolved(env)
    db = resources["Database"]
    by_resource = {"MasterUserPassword", "DBSubnetGroupName", "DBParameterGroupName", "VPCSecurityGroups"}
    props = {k: evaluate(v, names) for k, v in db["Properties"].items() if k not in by_resource}
    assert props["DBInstanceIdentifier"] == ENVS[env].rds_identifier
    assert props["StorageEncrypted"] is True and props["PubliclyAccessible"] is False
    assert int(props["BackupRetentionPeriod"]) >= 1
    assert props["DeletionProtection"] == ("true" if env == "production" else "false")
    assert db["DeletionPolicy"] == db["UpdateReplacePolicy"] == "Snapshot"
    assert resources["DatabaseParameters"]["Properties"]["Parameters"] == {"rds.force_ssl": "1"}
    # The password is generated by Secrets Manager and resolved by CloudFormation: never a value in the template.
    assert "{{resolve:secretsmanager:${DatabaseMasterSecret}" in db["Properties"]["MasterUserPassword"]["Fn::Sub"]
    url = resources["DatabaseUrlSecret"]["Properties"]["SecretString"]["Fn::Sub"]
    assert url.endswith("sslmode=require") and "{{resolve:secretsmanager:" in url
    # Reachable only from the service's VPC connector.
    (ingress,) = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "ConnectorSecurityGroup"} and "CidrIp" not in ingress


def test_no_secret_value_is_written_in_a_template():
    """Every Secrets Manager secret is generated, or built from generated ones by dynamic reference."""
    resources = load(TEMPLATES / "environment.yaml")["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::SecretsManager::Secret":
            continue
        props = resource["Properties"]
        if "SecretString" in props:
            assert "{{resolve:secretsmanager:" in json.dumps(props["SecretString"]), logical_id
        else:
            assert "GenerateSecretString" in props, logical_id


def test_production_and_staging_names_never_meet():
    staging = parameters.environment(ENVS["staging"], None, IMAGE)
    production = parameters.environment(ENVS["production"], None, IMAGE)
    for key in ("ServiceName", "RdsIdentifier", "SecretNamespace", *(k for k in staging if k.startswith("Secret"))):
        assert staging[key] != production.get(key), key
    assert target("staging").stack != target("production").stack


def test_the_repository_keeps_every_release_record():
    repo = load(TEMPLATES / "shared.yaml")["Resources"]["Repository"]
    props = repo["Properties"]
    assert props["RepositoryName"] == {"Ref": "EcrRepositoryName"}
    assert parameters.shared("acme/mv-os")["EcrRepositoryName"] == ENVS["production"].ecr_repository
    assert props["ImageTagMutability"] == "IMMUTABLE"  # audit: record-immutable
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repo["DeletionPolicy"] == "Retain"
    rules = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    # Only untagged images may expire.  Every push is tagged (git-<sha>), so the digest a release record names
    # (/mv-os/release/*, which production deploys and rolls back to) is never expired.
    assert rules and all(r["selection"]["tagStatus"] == "untagged" for r in rules)
