"""GitHub as code for MV-OS: repository settings (branch protection, environments) and the promotion check.

Both talk to GitHub's REST API with `requests` and a token from the environment (GITHUB_TOKEN or GH_TOKEN);
GITHUB_API_URL (set by GitHub Actions) selects the API host, so tests point it at a local HTTP server."""
