"""Infrastructure: CloudFormation stacks (infra/lib), per-environment settings (infra/config) and what both sides
agree on (contract: the resource name, the SSM parameters, stack parameters and outputs, the one reader of
infra/config/<env>.json and of a template)."""

MAY_IMPORT: tuple[str, ...] = ("model.common",)
