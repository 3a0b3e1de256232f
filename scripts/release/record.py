"""The staging-validated record: an immutable ECR tag `staging-validated-<tree>` on the image staging ran.

Why an ECR tag (and not SSM or a GitHub deployment status):
- It lives on the artifact itself, in the one repository both environments deploy from, so "which digest did
  staging validate for this tree?" is a single `describe_images` call by the production role, which needs no
  other service and no GitHub token.
- It is keyed on the git TREE (`git rev-parse HEAD^{tree}`): merging develop into main makes a new commit with
  the same tree, so the record still applies; a commit made directly on main has a new tree and no record.
- With the repository's tag mutability set to IMMUTABLE, a record cannot be moved to another digest later
  (`put_image` answers ImageTagAlreadyExistsException); `audit` checks that setting.
- Writing it re-uses the exact manifest (`batch_get_image` -> `put_image` with the same bytes and
  `imageDigest`), so the tag names the very digest that ran, not a rebuild.
Keep `staging-validated-*` out of any ECR lifecycle expiry rule.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from scripts.release.images import DIGEST

TAG_PREFIX = "staging-validated-"
MANIFEST_TYPES = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
]


class RecordError(Exception):
    pass


def tag_for(tree: str) -> str:
    return TAG_PREFIX + tree


class EcrRecord:
    def __init__(self, client, repository: str):
        self.client = client
        self.repository = repository

    def read(self, tree: str) -> str | None:
        """The digest staging validated for `tree`, or None."""
        try:
            found = self.client.describe_images(repositoryName=self.repository, imageIds=[{"imageTag": tag_for(tree)}])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
                return None
            raise
        details = found.get("imageDetails", [])
        return details[0]["imageDigest"] if details else None

    def validated_tags(self, digest: str) -> list[str]:
        """The staging-validated tags a digest carries ([] if none, or if the digest is not in the repo)."""
        try:
            found = self.client.describe_images(repositoryName=self.repository, imageIds=[{"imageDigest": digest}])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
                return []
            raise
        tags = [t for d in found.get("imageDetails", []) for t in d.get("imageTags", [])]
        return sorted(t for t in tags if t.startswith(TAG_PREFIX))

    def write(self, tree: str, digest: str) -> str:
        """Tag `digest` as validated for `tree`.  Idempotent for the same digest; refuses to move a record."""
        if not DIGEST.fullmatch(digest):
            raise RecordError(f"{digest!r} is not a sha256 digest")
        got = self.client.batch_get_image(
            repositoryName=self.repository, imageIds=[{"imageDigest": digest}], acceptedMediaTypes=MANIFEST_TYPES
        )
        if not got.get("images"):
            raise RecordError(f"{digest} is not in ECR repository {self.repository}")
        image = got["images"][0]
        tag = tag_for(tree)
        kwargs = {
            "repositoryName": self.repository,
            "imageManifest": image["imageManifest"],
            "imageTag": tag,
            "imageDigest": digest,
        }
        if image.get("imageManifestMediaType"):
            kwargs["imageManifestMediaType"] = image["imageManifestMediaType"]
        try:
            self.client.put_image(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("ImageTagAlreadyExistsException", "ImageAlreadyExistsException"):
                raise
            existing = self.read(tree)
            if existing != digest:
                raise RecordError(
                    f"tree {tree} is already recorded as validated with {existing}; a record never moves. "
                    f"Production will deploy {existing}. To validate a new image, change the tree (a new commit "
                    "on develop)."
                ) from None
        return tag

    def repository_uri(self) -> str:
        repos = self.client.describe_repositories(repositoryNames=[self.repository])["repositories"]
        return repos[0]["repositoryUri"]

    def tag_mutability(self) -> str:
        repos = self.client.describe_repositories(repositoryNames=[self.repository])["repositories"]
        return repos[0].get("imageTagMutability", "MUTABLE")
