"""Infrastructure: CloudFormation stacks (infra/lib), per-environment settings (infra/config), their tests."""

MAY_IMPORT: tuple[str, ...] = ()
