"""Image references: the engine only ever deploys `<registry>/<repository>@sha256:<64 hex>`."""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REF = re.compile(
    r"(?P<registry>(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com)"
    r"/(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)@(?P<digest>sha256:[0-9a-f]{64})"
)


class ImageRefError(ValueError):
    pass


@dataclass(frozen=True)
class ImageRef:
    registry: str
    account: str
    region: str
    repository: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    def __str__(self) -> str:
        return self.ref

    def with_digest(self, digest: str) -> ImageRef:
        if not DIGEST.fullmatch(digest):
            raise ImageRefError(f"{digest!r} is not a sha256 digest")
        return ImageRef(self.registry, self.account, self.region, self.repository, digest)

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Accept only an ECR image by digest.  A tag (`:latest`, `:develop`, even `:tag@sha256:`) is mutable
        and refused, because what a tag points at can change between the gates and the deploy."""
        text = (text or "").strip()
        match = _REF.fullmatch(text)
        if match:
            return cls(**{k: match[k] for k in ("registry", "account", "region", "repository", "digest")})
        if "@sha256:" not in text:
            raise ImageRefError(
                f"{text or '(none)'} is not given by digest: use <account>.dkr.ecr.<region>.amazonaws.com/"
                "<repository>@sha256:<64 hex>, never a tag"
            )
        raise ImageRefError(
            f"{text} is not an ECR image by digest (<account>.dkr.ecr.<region>.amazonaws.com/<repository>"
            "@sha256:<64 lowercase hex>, no tag)"
        )


def repository_uri(ecr, repository: str) -> str:
    return ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]


def tag_mutability(ecr, repository: str) -> str:
    """IMMUTABLE keeps a `git-<sha>` tag on the image it was pushed with (`nox -s audit` checks it)."""
    return ecr.describe_repositories(repositoryNames=[repository])["repositories"][0].get(
        "imageTagMutability", "MUTABLE"
    )
