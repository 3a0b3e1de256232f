"""The rehearsal's world: a throwaway origin with develop and main, moto for AWS, the App Runner stand-in, a real
PostgreSQL database per environment, and the workflows' steps run in the order the workflow files give.

The clone starts as a copy of this checkout's application (backend, frontend, gunicorn.conf.py, the entrypoint,
env/environments.toml with the phone numbers an operator fills in, and .github/workflows).  A "workflow run"
checks out the run's commit detached (as actions/checkout does) and runs each step of the workflow's jobs: the
nox sessions through the engine's own command line (`python -m scripts.release` argv), the image build as a
reproducible build of the commit's tree into the image store and ECR."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import boto3
import yaml

from mv_os.localdb import drop_database, ensure_database
from scripts.release import cli, environments, flows, status
from scripts.release.gates import Aws
from scripts.release.targets.base import DeployError
from tests.rehearsal.network import Forwarder, make_ca, tls_context, unix_to
from tests.rehearsal.standin import LocalAppRunner, LocalEcsExpress
from tests.support.databases import admin_url

ROOT = Path(__file__).resolve().parents[2]
APP_FILES = ["backend/mv_os", "frontend", "gunicorn.conf.py", "scripts/docker-entrypoint.sh", ".github/workflows"]
REGION, ACCOUNT = "us-east-1", "123456789012"
REPOSITORY = "mv-os-backend"
NOX = re.compile(r"\bnox\s+-s\s+([\w-]+)")
TEST_STAGE = {"lint", "tests", "compat", "e2e", "rehearse"}  # the test job: checks, not release steps to play


@dataclass
class Run:
    """One workflow run: what it printed and how it ended."""

    workflow: str
    sha: str
    code: int = 0
    lines: list[str] = field(default_factory=list)
    image: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def workflow_steps(path: Path) -> list[tuple[str, str]]:
    """(job, step) in file order: `build` for the image build, else the nox session a step runs."""
    wf = yaml.safe_load(path.read_text())
    out = []
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("docker/build-push-action"):
                out.append((job_id, "build"))
            # One step runs each session once, even when its script names it in two branches of an `if`.
            for session in dict.fromkeys(NOX.findall(str(step.get("run", "")))):
                if session not in TEST_STAGE:
                    out.append((job_id, session))
    return out


class World:
    def __init__(self, workdir: Path, target: str = "apprunner"):
        self.dir = workdir
        self.target = target
        self.origin, self.clone, self.images = workdir / "origin.git", workdir / "clone", workdir / "images"
        self.images.mkdir(parents=True)
        self._setup_git()
        self._setup_aws()
        self._setup_databases_and_secrets()

    # -- set-up ---------------------------------------------------------------------------------------------------
    def git(self, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(self.clone), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def _setup_git(self) -> None:
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)], check=True)
        self.clone.mkdir()
        for rel in APP_FILES:
            src, dst = ROOT / rel, self.clone / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dst)
        text = (ROOT / "env" / "environments.toml").read_text()
        text = text.replace("<staging phone number id>", "100000000000001")
        text = text.replace("<production phone number id>", "100000000000002")
        # Both environments on the rehearsal's target: the one line per environment a team would change.
        text = re.sub(r'^target = "apprunner"', f'target = "{self.target}"', text, flags=re.MULTILINE)
        (self.clone / "env").mkdir()
        (self.clone / "env" / "environments.toml").write_text(text)
        self.git("init", "-q", "-b", "main")
        for key, value in (("user.email", "team@example.com"), ("user.name", "Rehearsal"), ("commit.gpgsign", "false")):
            self.git("config", key, value)
        self.git("remote", "add", "origin", str(self.origin))
        self.commit("initial: MV-OS as it is", None)
        self.git("push", "-q", "origin", "main")
        self.git("checkout", "-q", "-b", "develop")
        self.git("push", "-q", "origin", "develop")

    def _setup_aws(self) -> None:
        clients = {n: boto3.client(n, region_name=REGION) for n in ("secretsmanager", "ecr", "sts", "ssm", "logs")}
        clients["ecr"].create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
        certs = make_ca(self.dir / "tls")
        os.environ["REQUESTS_CA_BUNDLE"] = str(certs[0])
        standin = LocalEcsExpress if self.target == "ecs-express" else LocalAppRunner
        self.standin = standin(
            self.images, clients["secretsmanager"], clients["logs"], tls_context(certs[1], certs[2]), ACCOUNT, REGION,
            self.dir,
        )  # fmt: skip
        self.envs = environments.load(self.clone / "env" / "environments.toml")
        for env in self.envs.values():
            if env.deployable:
                assert env.target == self.target, f"{env.name} deploys to {env.target}, not {self.target}"
                self.standin.create_service(env.service)
        self.aws = Aws(target=self.standin, **clients)
        self.ecr = clients["ecr"]

    def _setup_databases_and_secrets(self) -> None:
        admin = admin_url()
        self.admin, self.databases = admin, []
        socket_dir = admin.split("host=", 1)[-1].split("&", 1)[0]
        self.pg_forward = Forwarder("127.0.0.2", unix_to(f"{socket_dir}/.s.PGSQL.5432"))
        for name in ("staging", "production"):
            db = f"mv_os_rehearsal_{name}_{os.getpid()}"
            url = ensure_database(admin, db, recreate=True)
            self.databases.append(db)
            if name == "production":  # over TCP, as RDS is: production refuses a local database
                url = f"postgresql://postgres@127.0.0.2:{self.pg_forward.port}/{db}"
            env = self.envs[name]
            values = {
                "DATABASE_URL": url,
                "JWT_SECRET": secrets.token_urlsafe(48),
                "WHATSAPP_APP_SECRET": secrets.token_hex(16),
                "WHATSAPP_VERIFY_TOKEN": secrets.token_hex(12),
                "WHATSAPP_ACCESS_TOKEN": secrets.token_urlsafe(32),
                "SMOKE_USER_PASSWORD": secrets.token_urlsafe(32),
            }
            for var, secret_name in env.secrets.items():
                self.aws.secretsmanager.create_secret(Name=secret_name, SecretString=values[var])

    def close(self) -> None:
        self.standin.close()
        self.pg_forward.close()
        for db in self.databases:
            with contextlib.suppress(Exception):
                drop_database(self.admin, db)

    # -- the team's work ------------------------------------------------------------------------------------------
    def commit(self, message: str, files: dict[str, str] | None) -> str:
        for rel, content in (files or {}).items():
            path = self.clone / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def checkout(self, branch: str) -> None:
        self.git("checkout", "-q", branch)

    def push(self, branch: str) -> str:
        self.git("push", "-q", "origin", f"{branch}:{branch}")
        return self.git("rev-parse", branch)

    def merge(self, into: str, source: str, *, ff: bool = False) -> str:
        self.checkout(into)
        self.git("merge", "-q", "--ff" if ff else "--no-ff", "-m", f"Merge {source} into {into}", source)
        return self.push(into)

    # -- AWS / App Runner as a person would look at it ------------------------------------------------------------
    def serving(self, env: str) -> str:
        """The digest the environment's HTTPS URL reports right now (through the real front end)."""
        import requests

        service = self.standin.services[self.envs[env].service]
        return requests.get(f"{service.url}/version", timeout=10).json().get("image_digest", "")

    def repository_uri(self) -> str:
        return self.ecr.describe_repositories(repositoryNames=[REPOSITORY])["repositories"][0]["repositoryUri"]

    def build(self, sha: str) -> str:
        """A reproducible build: the image is the commit's tree; the same tree gives the same digest."""
        tree = self.git("rev-parse", f"{sha}^{{tree}}")
        layer = "sha256:" + hashlib.sha256(tree.encode()).hexdigest()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": layer},
                "layers": [
                    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": layer}
                ],
            }
        )
        got = self.ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest, imageTag=f"git-{sha}")
        digest = got["image"]["imageId"]["imageDigest"]
        target = self.images / digest.removeprefix("sha256:")
        if not target.exists():
            target.mkdir()
            archive = subprocess.run(["git", "-C", str(self.clone), "archive", sha], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        return f"{self.repository_uri()}@{digest}"

    # -- workflows ------------------------------------------------------------------------------------------------
    def engine(self, run: Run, *argv: str) -> tuple[int, list[str]]:
        """`python -m scripts.release ARGV` in the clone, with this world's AWS and environments file."""
        path = self.clone / "env" / "environments.toml"
        buf = io.StringIO()
        patches = {
            (flows, "connect"): lambda env: (self.aws, ""),
            (cli, "deployable"): partial(environments.deployable, path=path),
            (cli, "budget"): partial(environments.budget, path=path),
            (status, "load"): partial(environments.load, path),
        }
        saved = {key: getattr(*key) for key in patches}
        try:
            for (module, name), value in patches.items():
                setattr(module, name, value)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                try:
                    if argv[0] == "status":  # its own module: read-only, no environment argument
                        code = status.main(list(argv[1:]), repo=self.clone)
                    else:
                        code = cli.main(list(argv), repo=self.clone)
                except DeployError as exc:
                    print(f"engine error: {exc}")
                    code = 1
        finally:
            for (module, name), value in saved.items():
                setattr(module, name, value)
        lines = buf.getvalue().splitlines()
        run.lines += [f"$ nox -s {argv[0]} -- {' '.join(argv[1:])}", *lines]
        return code, lines

    def run_workflow(self, name: str, sha: str, branch: str, **inputs: str) -> Run:
        """Run `.github/workflows/NAME`'s steps for commit `sha` on `branch`, in the file's order; a failing step
        ends the run (as a failing job does, and the jobs that need it never start)."""
        run = Run(name, sha)
        self.git("checkout", "-q", "--detach", sha)
        os.environ.update(GITHUB_REF=f"refs/heads/{branch}", GITHUB_SHA=sha)
        try:
            for job, step in workflow_steps(self.clone / ".github" / "workflows" / name):
                code = self._step(run, job, step, inputs)
                if code != 0:
                    run.code = code
                    run.lines.append(f"job {job} FAILED at {step}")
                    break
        finally:
            for var in ("GITHUB_REF", "GITHUB_SHA"):
                os.environ.pop(var, None)
        return run

    def _step(self, run: Run, job: str, step: str, inputs: dict[str, str]) -> int:
        env = inputs.get("environment") or ("production" if run.workflow == "deploy-production.yml" else "staging")
        if step == "validated-digest":
            code, lines = self.engine(run, "validated-digest", env)
            if code == 0 and lines:
                if run.image and env == "production" and lines[-1] != run.image:
                    run.lines.append("staging-validated digest changed since approval")
                    return 1
                run.image = lines[-1]
            return 0 if env == "staging" else code
        if step == "build":
            if not run.image:
                run.image = self.build(run.sha)
                run.lines.append(f"built {run.image}")
            return 0
        if step == "plan":
            return self.engine(run, "plan", env, "--image", run.image)[0]
        if step == "deploy":
            redeploy = ["--redeploy"] if inputs.get("redeploy") else []
            return self.engine(run, "deploy", env, "--image", run.image, *redeploy)[0]
        if step == "record":
            return self.engine(run, "record", env, "--image", run.image)[0]
        if step == "rollback":
            to = ["--to", inputs["to"]] if inputs.get("to") else []
            return self.engine(run, "rollback", env, *to)[0]
        if step == "status":
            return self.engine(run, "status", "--markdown")[0]
        run.lines.append(f"the rehearsal does not know step {step!r} of job {job}")
        return 1
