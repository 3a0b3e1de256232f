"""A small stateful stand-in for the parts of GitHub's REST API that scripts/github uses, served over real
HTTP by pytest-httpserver.  Request and response shapes follow GitHub's REST reference (branch protection,
environments, deployment branch policies, deployments and deployment statuses)."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

TOKEN = "test-token-placeholder"  # pragma: allowlist secret (a fixture value, not a credential)


def _json(status: int, body: Any = None) -> Response:
    return Response("" if body is None else json.dumps(body), status=status, content_type="application/json")


@dataclass
class FakeGitHub:
    repo: str = "acme/mv-os"
    teams: dict[str, int] = field(default_factory=lambda: {"release-approvers": 42})
    users: dict[str, int] = field(default_factory=lambda: {"alice": 7})
    protections: dict[str, dict] = field(default_factory=dict)
    environments: dict[str, dict] = field(default_factory=dict)
    policies: dict[str, list[dict]] = field(default_factory=dict)
    deployments: list[dict] = field(default_factory=list)
    oidc: dict = field(default_factory=lambda: {"use_default": True})
    statuses: dict[int, list[dict]] = field(default_factory=dict)
    log: list[tuple[str, str, Any]] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))

    # -------------------------------------------------------------------------------------------- helpers
    def writes(self) -> list[tuple[str, str, Any]]:
        return [entry for entry in self.log if entry[0] != "GET"]

    def add_deployment(self, sha: str, environment: str, *states: str) -> int:
        dep_id = next(self.ids)
        self.deployments.insert(0, {"id": dep_id, "sha": sha, "environment": environment, "ref": "develop"})
        # GitHub lists statuses newest first.
        self.statuses[dep_id] = [{"id": next(self.ids), "state": s} for s in reversed(states)]
        return dep_id

    def _reviewer_view(self, reviewer: dict) -> dict:
        if reviewer["type"] == "Team":
            slug = next(s for s, i in self.teams.items() if i == reviewer["id"])
            return {"type": "Team", "reviewer": {"id": reviewer["id"], "slug": slug}}
        login = next(u for u, i in self.users.items() if i == reviewer["id"])
        return {"type": "User", "reviewer": {"id": reviewer["id"], "login": login}}

    # --------------------------------------------------------------------------------------------- routes
    def handle(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        self.log.append((request.method, request.path, body))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _json(401, {"message": "Bad credentials"})
        path, method = request.path, request.method
        base = f"/repos/{self.repo}"
        if m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)", path):
            team = self.teams.get(m[2])
            return _json(200, {"id": team, "slug": m[2]}) if team else _json(404, {"message": "Not Found"})
        if m := re.fullmatch(r"/users/([^/]+)", path):
            user = self.users.get(m[1])
            return _json(200, {"id": user, "login": m[1]}) if user else _json(404, {"message": "Not Found"})
        if not path.startswith(base):
            return _json(404, {"message": "Not Found"})
        rest = path[len(base) :]
        if m := re.fullmatch(r"/branches/([^/]+)/protection", rest):
            return self._protection(method, m[1], body)
        if m := re.fullmatch(r"/environments/([^/]+)/deployment-branch-policies(?:/(\d+))?", rest):
            return self._policies(method, m[1], int(m[2]) if m[2] else None, body)
        if m := re.fullmatch(r"/environments/([^/]+)", rest):
            return self._environment(method, m[1], body)
        if rest == "/actions/oidc/customization/sub":
            if method == "PUT":
                if body.get("use_default") is False and not body.get("include_claim_keys"):
                    return _json(422, {"message": "include_claim_keys is required"})
                self.oidc = dict(body)
                return _json(201, {})
            return _json(200, self.oidc)
        if rest == "/deployments" and method == "GET":
            sha, env = request.args.get("sha"), request.args.get("environment")
            return _json(200, [d for d in self.deployments if d["sha"] == sha and d["environment"] == env])
        if m := re.fullmatch(r"/deployments/(\d+)/statuses", rest):
            return _json(200, self.statuses.get(int(m[1]), []))
        return _json(404, {"message": "Not Found"})

    def _protection(self, method: str, branch: str, body: Any) -> Response:
        if method == "GET":
            stored = self.protections.get(branch)
            return _json(200, stored) if stored else _json(404, {"message": "Branch not protected"})
        if method == "PUT":
            checks = body["required_status_checks"]
            if "contexts" in checks and "checks" in checks:
                return _json(422, {"message": "Only one of contexts or checks can be set"})
            reviews = body["required_pull_request_reviews"]
            self.protections[branch] = {
                "required_status_checks": {
                    "strict": checks["strict"],
                    "contexts": [c["context"] for c in checks["checks"]],
                    "checks": checks["checks"],
                },
                "required_pull_request_reviews": {
                    "dismiss_stale_reviews": reviews["dismiss_stale_reviews"],
                    "require_code_owner_reviews": reviews["require_code_owner_reviews"],
                    "required_approving_review_count": reviews["required_approving_review_count"],
                },
                "enforce_admins": {"enabled": body["enforce_admins"]},
                "allow_force_pushes": {"enabled": body["allow_force_pushes"]},
                "allow_deletions": {"enabled": body["allow_deletions"]},
                "required_conversation_resolution": {"enabled": body["required_conversation_resolution"]},
            }
            return _json(200, self.protections[branch])
        return _json(405, {"message": "Method Not Allowed"})

    def _environment(self, method: str, name: str, body: Any) -> Response:
        if method == "GET":
            env = self.environments.get(name)
            if env is None:
                return _json(404, {"message": "Not Found"})
            rules = []
            if env.get("reviewers"):
                rules.append(
                    {
                        "type": "required_reviewers",
                        "prevent_self_review": env.get("prevent_self_review", False),
                        "reviewers": [self._reviewer_view(r) for r in env["reviewers"]],
                    }
                )
            if env.get("wait_timer"):
                rules.append({"type": "wait_timer", "wait_timer": env["wait_timer"]})
            if env.get("deployment_branch_policy"):
                rules.append({"type": "branch_policy"})
            return _json(
                200,
                {
                    "name": name,
                    "can_admins_bypass": env.get("can_admins_bypass", True),
                    "protection_rules": rules,
                    "deployment_branch_policy": env["deployment_branch_policy"],
                },
            )
        if method == "PUT":
            if body.get("prevent_self_review") and not body.get("reviewers"):
                return _json(422, {"message": "prevent_self_review requires reviewers"})
            self.environments[name] = dict(body)
            self.policies.setdefault(name, [])
            return _json(200, {"name": name})
        return _json(405, {"message": "Method Not Allowed"})

    def _policies(self, method: str, env: str, policy_id: int | None, body: Any) -> Response:
        if env not in self.environments:
            return _json(404, {"message": "Not Found"})
        policies = self.policies.setdefault(env, [])
        if method == "GET" and policy_id is None:
            return _json(200, {"total_count": len(policies), "branch_policies": policies})
        if method == "POST" and policy_id is None:
            policy = {"id": next(self.ids), "name": body["name"], "type": body.get("type", "branch")}
            policies.append(policy)
            return _json(200, policy)
        if method == "DELETE" and policy_id is not None:
            self.policies[env] = [p for p in policies if p["id"] != policy_id]
            return Response(status=204)
        return _json(405, {"message": "Method Not Allowed"})
