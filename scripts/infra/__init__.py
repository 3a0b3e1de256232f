"""The AWS side as code: CloudFormation stacks planned and applied as change sets (`nox -s infra`)."""
