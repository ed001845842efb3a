"""Tests of the stacks: cfn-lint, IAM least privilege, delivery rules, moto smoke deployment."""
