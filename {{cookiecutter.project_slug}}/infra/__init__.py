"""Infrastructure: CloudFormation stacks (infra/lib), per-environment settings (infra/config) and the names both
sides agree on (contract: the resource name, the SSM parameters, how a template is read)."""

MAY_IMPORT: tuple[str, ...] = ("model.common",)
