"""Every command a person or CI runs for MV-OS.  `nox -l` lists the sessions; workflows only call these.

Sessions install from the hashed exports of uv.lock in requirements/ (refresh them with `nox -s lock`) into venvs
that are reused between runs, so warm runs are fast.  The backend is put on PYTHONPATH, not installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
REQ = ROOT / "requirements"

nox.needs_version = ">=2025.5"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True


def _install(session: nox.Session, group: str) -> None:
    """Install one lock file (exact pins with hashes) and point PYTHONPATH at the backend and scripts."""
    session.install("--require-hashes", "-r", str(REQ / f"{group}.txt"))
    session.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "backend"), str(ROOT)])


def _env_default(session: nox.Session, name: str, value: str) -> None:
    """Set `name` for the session's commands unless the user's shell (or nox) already gives it a value.

    nox's `session.env` holds only the session's own overrides, not the shell's variables, so
    `session.env.setdefault` alone would override an exported `PORT=4301`."""
    if name not in os.environ and name not in session.env:
        session.env[name] = value


def _local_env(session: nox.Session) -> None:
    _env_default(session, "NODE_ENV", "local")
    _env_default(session, "PYTHONUNBUFFERED", "1")
    # The mock provider answers each send with signed sent/delivered/read webhooks to PUBLIC_BASE_URL.
    _env_default(session, "MOCK_STATUS_WEBHOOKS", "1")


@nox.session
def dev(session: nox.Session) -> None:
    """Run MV-OS locally on http://127.0.0.1:3000 (or $PORT): NODE_ENV=local, mock providers, real PostgreSQL.

    Migrates and seeds the demo user first.  `nox -s dev -- --no-reload` turns the code reloader off.  The
    embedded PostgreSQL it starts (when DATABASE_URL is unset) stops when the command ends."""
    _install(session, "pg")
    _local_env(session)
    session.run("python", "-m", "mv_os.devserver", *session.posargs)


@nox.session
def serve(session: nox.Session) -> None:
    """Like `dev`, but under gunicorn with the production-like gunicorn.conf.py (PORT from the shell, else 3000)."""
    _install(session, "pg")
    _local_env(session)
    session.run("python", "-m", "mv_os.devserver", "--gunicorn", *session.posargs)


@nox.session(default=False)
def manage(session: nox.Session) -> None:
    """Operator commands on the database `nox -s dev` uses (local templates, DATABASE_URL or the embedded server).

    `nox -s manage -- migrate [--check] | create-user --email ADDRESS | seed-demo | webhooks status|process`."""
    if not session.posargs:
        session.error(
            "Usage: nox -s manage -- migrate [--check] | create-user --email ADDRESS | seed-demo | webhooks status"
        )
    _install(session, "pg")
    _local_env(session)
    session.run("python", "-m", "mv_os.manage", *session.posargs)


def _test_env(session: nox.Session) -> None:
    """What every test session needs besides its venv: bytecode caching and the nox that runs it."""
    _keep_bytecode(session)
    # Tests that call nox run it with the interpreter that runs this nox (`python3 -m nox`), never from PATH.
    session.env["MV_OS_NOX_PYTHON"] = sys.executable


def _keep_bytecode(session: nox.Session) -> None:
    """Let Python cache compiled bytecode (__pycache__, git-ignored) in the venv and the repo.

    With PYTHONDONTWRITEBYTECODE set in the shell, every process the tests start (pytest workers, gunicorn,
    flask, the replay CLI) compiled the venv's modules from source again: about 0.5 s more per process."""
    session.env["PYTHONDONTWRITEBYTECODE"] = None  # None removes it from the commands' environment


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on a real PostgreSQL (DATABASE_URL/TEST_DATABASE_URL, else the embedded server).

    Runs on three xdist workers (each with its own database; about a sixth of a run on two cores is waiting on
    servers starting and stopping and on the timeouts under test, which a third worker fills).  Extra arguments
    replace that and go to pytest, e.g. `nox -s tests -- -k auth -x` (or `-- -q -n auto` on a bigger machine);
    `nox -s tests -- -m unit` is the fast lane (pure tests: no database, no server).
    The browser tests (tests/e2e) run too when Chromium is installed; without it they are deselected with a
    warning, except under CI=true, where they run and fail (a CI run never passes without them)."""
    _install(session, "test")
    _test_env(session)
    args = session.posargs or ["-q", "-n", "3"]
    if not session.posargs and os.environ.get("CI") != "true" and not any(map(os.path.isfile, CHROMIUMS)):
        session.warn(
            f"{CHROMIUMS[0]} not found: browser tests deselected (apt-get install chromium-headless-shell; "
            "`nox -s e2e`)"
        )
        args = [*args, "-m", "not e2e"]
    session.run("pytest", *args)


@nox.session(default=False)
def compat(session: nox.Session) -> None:
    """The previous release's own API tests on the schema this checkout's migrations produce (rollback safety).

    Exports REF (default origin/main, else main; its first parent when REF is this tree, as on main) into
    .mv-os/, swaps in this checkout's migrations, installs REF's locked test requirements and runs REF's API
    tests with REF's conftest; one `PASS compat: ...` / `FAIL compat: ...` line, non-zero exit on failure.
    `nox -s compat -- [--against REF] [PYTEST_ARGS...]`, e.g. `-- --against v1.2.0 -x`."""
    from scripts.release import compat as check

    try:
        against, extra = check.parse_args(list(session.posargs))
        previous = check.prepare(ROOT, against)
    except check.UsageError as err:
        session.error(str(err))
    except check.CompatError as err:
        session.error(f"FAIL compat: {err}")
    try:
        for requirements in previous.requirements:
            session.install("--require-hashes", "-r", str(requirements))
        _test_env(session)
        session.env.update(check.pytest_env(ROOT, previous))
        with session.chdir(previous.folder):
            # Failures are read from pytest's report, whatever its exit code says.
            session.run("pytest", *check.pytest_args(previous, extra), success_codes=range(256))
        passed, line = check.verdict(previous)
    finally:
        check.remove(previous.folder)
    print(line, flush=True)
    if not passed:
        session.error("the previous release's API tests fail on this checkout's schema")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Long webhook fuzzing: tests/backend/webhooks/test_fuzz.py with EXAMPLES signed bodies per property.

    `nox -s fuzz -- [EXAMPLES]` (default 3400: three properties, over 10,000 signed malformed bodies).  Every
    answer must be 200 or 400, every archived payload processed without an error, then processed once more
    (a replay).  The default suite runs the same properties with 100 examples each."""
    examples = session.posargs[0] if session.posargs else "3400"
    if len(session.posargs) > 1 or not examples.isdigit() or int(examples) < 1:
        session.error("Usage: nox -s fuzz -- [EXAMPLES_PER_PROPERTY]  (e.g. nox -s fuzz -- 3400)")
    _install(session, "test")
    _test_env(session)
    session.env["MV_OS_FUZZ_EXAMPLES"] = examples
    session.run("pytest", "tests/backend/webhooks/test_fuzz.py", "-q", "-s", "-p", "no:xdist")


# tests/e2e/conftest.py picks the browser: MV_OS_CHROMIUM, else Debian's headless shell, else its full Chromium.
CHROMIUMS = (
    [os.environ["MV_OS_CHROMIUM"]]
    if os.environ.get("MV_OS_CHROMIUM")
    else [
        "/usr/bin/chromium-headless-shell",
        "/usr/bin/chromium",
    ]
)


@nox.session
def e2e(session: nox.Session) -> None:
    """Browser tests: Playwright drives Debian's headless Chromium (chromium-headless-shell, else chromium)
    against gunicorn + PostgreSQL.

    Never skipped: without Chromium they fail and say how to install it.  Screenshots: artifacts/e2e/."""
    _install(session, "test")
    _test_env(session)
    session.run("pytest", "tests/e2e", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks: ruff, import-linter, zizmor, workflow schema, hadolint, cfn-lint, secrets, YAML/TOML, locks."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    _pipeline_checks(session)
    templates = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "infra" / "cloudformation").glob("*.yaml"))
    session.run("cfn-lint", *templates)
    session.run("python", "scripts/lockfiles.py", "check")


def _repo_files(session: nox.Session) -> list[str]:
    """Tracked and new (not ignored) files: what a commit or CI's clone contains."""
    out = session.run("git", "ls-files", "--cached", "--others", "--exclude-standard", silent=True, external=True)
    return [f for f in (out or "").splitlines() if (ROOT / f).is_file()]


def _pipeline_checks(session: nox.Session) -> None:
    """zizmor (zero findings), GitHub's workflow schema, hadolint, the secret scan, YAML/TOML validity."""
    workflows = sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    if workflows:
        session.run("zizmor", "--offline", "--quiet", *workflows)
        session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    if (ROOT / "Dockerfile").is_file():
        session.run("hadolint", "Dockerfile")
    files = _repo_files(session)
    session.run("python", "scripts/check_secrets.py", "--fresh", "--baseline", ".secrets.baseline", "--tracked")
    configs = [f for f in files if f.endswith((".yml", ".yaml", ".toml"))]
    session.run("python", "scripts/check_config_files.py", *configs)
    session.run("pre-commit", "validate-config", ".pre-commit-config.yaml", silent=True)


@nox.session(default=False)
def lock(session: nox.Session) -> None:
    """Refresh uv.lock and its hashed exports requirements/*.txt: every dependency to its newest allowed version.

    `nox -s lock` upgrades on purpose; `-- --keep` changes only what pyproject.toml requires (after adding or
    changing a dependency); `-- --upgrade-package NAME` upgrades NAME alone.  `nox -s lint` then checks,
    offline, that the lock satisfies pyproject.toml."""
    args = list(session.posargs)
    if args == ["--keep"]:
        args = []
    elif not args:
        args = ["--upgrade"]
    elif args[0] != "--upgrade-package" or len(args) < 2:
        session.error("Usage: nox -s lock [-- --keep | --upgrade-package NAME [--upgrade-package NAME ...]]")
    _install(session, "lint")  # the pinned uv comes from the lint lock
    session.run("uv", "lock", *args)
    session.run("python", "scripts/lockfiles.py", "export")


# -- release (scripts/release): never run by a bare `nox`; AWS only through the standard SDK environment --------
def _release_impl(session: nox.Session, command: str) -> None:
    """Check the arguments against scripts/release/usage.py, then run `python -m scripts.release`."""
    from scripts.release.usage import check

    problem = check(command, list(session.posargs))
    if problem:
        session.error(problem)
    _install(session, "release")
    session.run("python", "-m", "scripts.release", command, *session.posargs)


@nox.session(default=False)
def plan(session: nox.Session) -> None:
    """Print every release gate (PASS/FAIL) and the exact App Runner request; changes nothing.

    `nox -s plan -- staging|production [--image <repo>@sha256:<digest>]`; exit 0 only if every gate passes."""
    _release_impl(session, "plan")


@nox.session(default=False)
def deploy(session: nox.Session) -> None:
    """Gates, App Runner deploy by digest, smoke, then production's history entry or its automatic rollback.

    `nox -s deploy -- staging|production --image <repo>@sha256:<digest> [--redeploy]`.  Staging deploys the
    recorded digest instead when this tree was validated before (back-merge, re-run)."""
    _release_impl(session, "deploy")


@nox.session(default=False)
def record(session: nox.Session) -> None:
    """Write the staging-validated record for HEAD's tree after checking staging runs that digest and passes smoke.

    `nox -s record -- staging --image <repo>@sha256:<digest>` (the recorder role's job in deploy-staging.yml)."""
    _release_impl(session, "record")


@nox.session(default=False)
def smoke(session: nox.Session) -> None:
    """Smoke-test a deployed service: healthz, readyz, version/digest, webhook 403, bearer 401.

    `nox -s smoke -- staging|production [--url URL] [--digest sha256:<digest>]`."""
    _release_impl(session, "smoke")


@nox.session(default=False)
def rollback(session: nox.Session) -> None:
    """Go back to the image that ran before (or `--to sha256:<digest>`), wait for it and smoke it.

    `nox -s rollback -- staging|production [--to sha256:<digest>]`."""
    _release_impl(session, "rollback")


INFRA_USAGE = (
    "Usage: nox -s infra -- plan staging|production|shared [--image <repo>@sha256:<digest>] | "
    "apply staging|production|shared <change-set> [--allow-replace <LogicalId>] | "
    "diff staging|production|shared --base <commit> | iam [--check]"
)


@nox.session(default=False)
def infra(session: nox.Session) -> None:
    """The AWS side as CloudFormation change sets: `plan <target>` shows one and changes nothing, `apply <target>
    <change-set>` executes only that reviewed plan, `diff <target> --base <commit>` is the offline plan of a pull
    request; `iam` renders infra/iam from the shared template.

    Targets: staging, production, shared.  docs/aws-setup.md takes an empty account to a first deploy."""
    args = list(session.posargs)
    targets = ("staging", "production", "shared")
    if not args or args[0] not in ("plan", "apply", "diff", "iam"):
        session.error(INFRA_USAGE)
    if args[0] != "iam" and (len(args) < 2 or args[1] not in targets or (args[0] == "apply" and len(args) < 3)):
        session.error(INFRA_USAGE)
    _install(session, "release")
    session.run("python", "-m", "scripts.infra", *args)


@nox.session(name="validated-digest", default=False)
def validated_digest(session: nox.Session) -> None:
    """Print `<repo>@sha256:...` that staging validated for HEAD's tree (what production deploys).

    `nox -s validated-digest -- staging|production`; exit 1 if the tree has no record."""
    _release_impl(session, "validated-digest")


@nox.session(default=False)
def audit(session: nox.Session) -> None:
    """Prove staging/production isolation from AWS: secret ARNs/namespaces, NODE_ENV, auto-deploy off.

    `nox -s audit [-- --values]` (--values compares salted fingerprints of secret values, never values)."""
    _release_impl(session, "audit")


@nox.session(default=False)
def status(session: nox.Session) -> None:
    """What runs on staging and production, develop's commits production lacks, and the promotion verdict.

    `nox -s status [-- --json|--markdown]`; read-only (the production plan role's reads, docs/release.md)."""
    from scripts.release.usage import check

    problem = check("status", list(session.posargs))
    if problem:
        session.error(problem)
    _install(session, "release")
    _keep_bytecode(session)  # a person waits for it: never compile boto3 from source on every run
    session.run("python", "-m", "scripts.release.status", *session.posargs)


@nox.session(default=False)
def rehearse(session: nox.Session) -> None:
    """Play the release history end to end on this machine; one `PASS <scenario>` / `FAIL <scenario>: <reason>` each.

    A throwaway git origin (develop, main), moto (ECR, Secrets Manager, STS, SSM, CloudWatch Logs), a local App Runner
    or ECS Express stand-in running the image's start command behind HTTPS (throwaway CA), real PostgreSQL per
    environment; steps in the workflows' order.  `nox -s rehearse [-- --short] [--target apprunner|ecs-express]`;
    exit 0 only if every scenario passes."""
    args = list(session.posargs)
    short = args[:1] == ["--short"]
    rest = args[1:] if short else args
    if rest not in ([], ["--target", "apprunner"], ["--target", "ecs-express"]):
        session.error("Usage: nox -s rehearse [-- --short] [--target apprunner|ecs-express]")
    _install(session, "test")
    _keep_bytecode(session)
    session.run("python", "-m", "tests.rehearsal", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark webhook ingestion under gunicorn on PostgreSQL against a bare-Flask ceiling (same run, same config).

    Prints a markdown table (req/s, p50/p99 at 16 connections; messages/s for 100-message batches; ratio to the
    ceiling; exactly-once check from the database) and writes artifacts/bench/latest.{json,md}.  Figures, not a
    test.  `nox -s bench -- --duration 10 --startup --suite` (`-- --help` lists the options)."""
    _install(session, "pg")
    session.env["BENCH_NOX_PYTHON"] = sys.executable
    session.run("python", "-m", "scripts.bench", *session.posargs)


@nox.session(default=False, venv_backend="none")
def replay(session: nox.Session) -> None:
    """Sign and POST webhook fixtures (exact bytes) to a running MV-OS; non-zero exit on any non-200.

    `nox -s replay -- FIXTURE|DIR... [--url URL] [--env-file FILE] [--production]`
    (URL defaults to http://127.0.0.1:$PORT/webhooks/whatsapp, PORT to 3000, FILE to env/backend.env.local.example)."""
    if not session.posargs:
        session.error(
            "Usage: nox -s replay -- FIXTURE|DIR... [--url URL] [--env-file FILE] [--production]  "
            "(e.g. nox -s replay -- scripts/webhooks/fixtures)"
        )
    # The CLI and mv_os.meta are standard library only: no venv, no install.
    session.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "backend"), str(ROOT)])
    session.run(sys.executable, "-m", "scripts.webhooks.replay", *session.posargs, external=True)


# -- GitHub as code (scripts/github) ------------------------------------------------------------------------
@nox.session(name="github-settings", default=False)
def github_settings(session: nox.Session) -> None:
    """Apply branch protection and the staging/production environments from .github/repository-settings.toml.

    `nox -s github-settings -- --plan` shows the changes (`--check`: exit 1 on drift); without --plan it applies.
    Needs GITHUB_TOKEN (repository admin) and --repo OWNER/NAME or GITHUB_REPOSITORY."""
    _install(session, "release")
    session.run("python", "-m", "scripts.github.settings", *session.posargs)


@nox.session(name="promotion-check", default=False)
def promotion_check(session: nox.Session) -> None:
    """Pull request into main: head must be develop and its head commit deployed to staging successfully.

    `nox -s promotion-check -- --head-ref develop --head-repo OWNER/NAME --sha SHA [--wait SECONDS]`."""
    _install(session, "release")
    session.run("python", "-m", "scripts.github.promotion", *session.posargs)


@nox.session(name="secrets-baseline", default=False)
def secrets_baseline(session: nox.Session) -> None:
    """Rewrite .secrets.baseline from the repository's files (the same tree always gives the same file).

    A false positive gets `# pragma: allowlist secret` and a reason on its line, not a baseline entry."""
    _install(session, "lint")
    session.run(
        "python",
        "scripts/check_secrets.py",
        "--write-baseline",
        "--baseline",
        ".secrets.baseline",
        "--tracked",
    )
