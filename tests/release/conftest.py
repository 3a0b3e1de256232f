"""Release-engine fixtures: environments from env/environments.toml, throwaway git repos, a Stubber'd App Runner
client with an instant fake clock, and moto (Secrets Manager, ECR, STS).  No secret value appears anywhere:
secret strings are obvious test placeholders."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from scripts.release.environments import DEFAULT_PATH, load
from scripts.release.gates import Aws, Context, Result
from scripts.release.targets.apprunner import AppRunnerTarget
from scripts.release.targets.ecs_express import EcsExpressTarget

ROOT_TOML = DEFAULT_PATH
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
REPOSITORY = "mv-os-backend"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SERVICE_IDS = {"staging": "0123456789abcdef0123456789abcdef", "production": "fedcba9876543210fedcba9876543210"}
OP_ID = "6a4e3c1f-1111-4222-8333-444455556666"


def smoke_passes(url, environment, digest, login=None):
    """A smoke runner (flows.SmokeRunner) whose checks all pass, for flows whose smoke is not the subject."""
    return [Result("healthz", True), Result("version", True)]


def smoke_fails(url, environment, digest, login=None):
    return [Result("healthz", True), Result("readyz", False, "expected 200, got 503")]


def digest_of(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def image_ref(digest: str) -> str:
    return f"{REGISTRY}/{REPOSITORY}@{digest}"


def service_arn(env_name: str) -> str:
    name = "mv-os-backend-staging" if env_name == "staging" else "mv-os-backend"
    return f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/{name}/{SERVICE_IDS[env_name]}"


def secret_arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"


class FakeClock:
    """Injected sleep/monotonic: every wait is recorded and returns at once."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader():
    """botocore parses its JSON models (endpoints.json, each service's shapes) again for every new session, and
    moto starts a fresh default session in every test (about 0.1 s each).  One loader for the run parses each
    file once; sessions, clients, credentials and moto's state stay per test."""
    loaders: dict[str | None, botocore.loaders.Loader] = {}

    def shared(search_paths_string=None):
        if search_paths_string not in loaders:
            loaders[search_paths_string] = botocore.loaders.create_loader(search_paths_string)
        return loaders[search_paths_string]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.session, "create_loader", shared)
        yield


@pytest.fixture
def envs():
    """The real definitions, with the phone-number placeholders filled as an operator would."""
    loaded = load()
    for name, number in (("staging", "100000000000001"), ("production", "100000000000002")):
        variables = {**loaded[name].variables, "WHATSAPP_PHONE_NUMBER_ID": number}
        loaded[name] = dataclasses.replace(loaded[name], variables=variables)
    return loaded


@pytest.fixture
def staging(envs):
    return envs["staging"]


@pytest.fixture
def production(envs):
    return envs["production"]


def service(
    env,
    *,
    status: str = "RUNNING",
    digest: str | None = None,
    node_env: str | None = None,
    auto_deploy: bool = False,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
) -> dict:
    """A `describe_service` Service, as the botocore model shapes it."""
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    return {
        "ServiceName": env.service,
        "ServiceId": SERVICE_IDS[env.name],
        "ServiceArn": service_arn(env.name),
        "ServiceUrl": f"{env.service}.{REGION}.awsapprunner.com",
        "CreatedAt": now,
        "UpdatedAt": now,
        "Status": status,
        "SourceConfiguration": {
            "ImageRepository": {
                "ImageIdentifier": image_ref(digest or digest_of("previous")),
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {
                    "Port": "8080",
                    "RuntimeEnvironmentVariables": {
                        "NODE_ENV": node_env or env.node_env,
                        "GIT_SHA": "0" * 40,
                        **(variables or {}),
                    },
                    "RuntimeEnvironmentSecrets": secrets
                    if secrets is not None
                    else {var: secret_arn(name) for var, name in env.secrets.items()},
                },
            },
            "AutoDeploymentsEnabled": auto_deploy,
            "AuthenticationConfiguration": {"AccessRoleArn": f"arn:aws:iam::{ACCOUNT}:role/mv-os-apprunner-ecr-access"},
        },
        "InstanceConfiguration": {
            "Cpu": "1024",
            "Memory": "2048",
            "InstanceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/mv-os-apprunner-instance-{env.name}",
        },
        "AutoScalingConfigurationSummary": {},
        "NetworkConfiguration": {},
    }


def operations(*statuses: str, op_id: str = OP_ID) -> dict:
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    return {
        "OperationSummaryList": [
            {"Id": op_id, "Type": "UPDATE_SERVICE", "Status": s, "StartedAt": now, "UpdatedAt": now} for s in statuses
        ]
    }


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials and no profile: nothing can reach a real AWS account."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto(aws_env):
    with mock_aws():
        yield


@pytest.fixture
def apprunner(aws_env):
    """A real boto3 App Runner client under Stubber: every call must be expected, with valid shapes."""
    client = boto3.client("apprunner", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def target(apprunner, clock):
    client, _ = apprunner
    lines: list[str] = []
    t = AppRunnerTarget(client, sleep=clock.sleep, monotonic=clock.monotonic, out=lines.append, timeout=600)
    t.lines = lines
    return t


@pytest.fixture
def ecs(aws_env):
    """A real boto3 ECS client under Stubber (the ECS Express Mode calls are in the `ecs` model)."""
    client = boto3.client("ecs", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def express_target(client, clock, env) -> EcsExpressTarget:
    """The ECS Express adapter for `env`'s cluster, on the instant clock, its progress lines kept in `.lines`."""
    lines: list[str] = []
    cluster = env.targets["ecs-express"]["cluster"]
    t = EcsExpressTarget(client, cluster=cluster, sleep=clock.sleep, monotonic=clock.monotonic, out=lines.append)
    t.timeout = 600
    t.lines = lines
    return t


@pytest.fixture
def ecs_target(ecs, clock, staging):
    return express_target(ecs[0], clock, staging)


def expect_service(stub: Stubber, env, **kwargs) -> None:
    """list_services (name -> ARN) is looked up once per target; describe_service each time."""
    stub.add_response(
        "list_services",
        {"ServiceSummaryList": [{"ServiceName": env.service, "ServiceArn": service_arn(env.name)}]},
        {"MaxResults": 20},
    )
    stub.add_response("describe_service", {"Service": service(env, **kwargs)}, {"ServiceArn": service_arn(env.name)})


def expect_describe(stub: Stubber, env, **kwargs) -> None:
    stub.add_response("describe_service", {"Service": service(env, **kwargs)}, {"ServiceArn": service_arn(env.name)})


def create_secrets(env, *, value_for=None) -> dict[str, str]:
    """Create the environment's secrets in moto; returns {VAR: ARN}.  Values are placeholders."""
    sm = boto3.client("secretsmanager", region_name=REGION)
    arns = {}
    for var, name in env.secrets.items():
        value = value_for(env, var) if value_for else f"test-placeholder-{env.name}-{var.lower()}"
        arns[var] = sm.create_secret(Name=name, SecretString=value)["ARN"]
    return arns


def create_repository(mutability: str = "IMMUTABLE") -> None:
    boto3.client("ecr", region_name=REGION).create_repository(repositoryName=REPOSITORY, imageTagMutability=mutability)


def push_image(label: str) -> str:
    """Put a (fake) image manifest into moto's ECR; returns its digest."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": digest_of(label),
            },
            # moto derives the image digest from the layer digests: one layer per label keeps digests distinct
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": digest_of("layer-" + label),
                }
            ],
        }
    )
    tag = "git-" + hashlib.sha256(label.encode()).hexdigest()[:40]
    got = boto3.client("ecr", region_name=REGION).put_image(
        repositoryName=REPOSITORY, imageManifest=manifest, imageTag=tag
    )
    return got["image"]["imageId"]["imageDigest"]


def aws_clients(target) -> Aws:
    return Aws(
        target=target,
        secretsmanager=boto3.client("secretsmanager", region_name=REGION),
        ecr=boto3.client("ecr", region_name=REGION),
        sts=boto3.client("sts", region_name=REGION),
        ssm=boto3.client("ssm", region_name=REGION),
        logs=boto3.client("logs", region_name=REGION),
    )


# -- throwaway git repositories ------------------------------------------------------------------------------
class Repo:
    def __init__(self, path: Path, *, init: bool = True):
        self.path = path
        if not init:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "release-tests@example.com")
        self.git("config", "user.name", "Release Tests")
        self.git("config", "commit.gpgsign", "false")

    @classmethod
    def existing(cls, path: Path) -> Repo:
        return cls(path, init=False)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, name: str, content: str, message: str) -> str:
        (self.path / name).write_text(content)
        self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tree(self) -> str:
        return self.git("rev-parse", "HEAD^{tree}")


@pytest.fixture(scope="session")
def _repo_template(tmp_path_factory) -> Path:
    """main with one commit, develop branched from it with one more commit; develop checked out.  Built once
    (eight git commands); each test gets its own copy."""
    r = Repo(tmp_path_factory.mktemp("release-repo") / "repo")
    r.commit("README", "mv-os\n", "initial")
    r.git("checkout", "-q", "-b", "develop")
    r.commit("app.txt", "feature A\n", "feature A")
    return r.path


@pytest.fixture
def repo(tmp_path, monkeypatch, _repo_template) -> Repo:
    """main with one commit, develop branched from it with one more commit; develop checked out (a copy of
    the session's template: the test may commit, branch and merge in it freely)."""
    for var in ("GITHUB_REF", "GITHUB_SHA"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "repo"
    shutil.copytree(_repo_template, path, symlinks=True)
    return Repo.existing(path)


def context(env, repo: Repo, image: str | None = None, aws: Aws | None = None, **kwargs) -> Context:
    return Context(env=env, repo=repo.path, image_text=image, aws=aws, **kwargs)
