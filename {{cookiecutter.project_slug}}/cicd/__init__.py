"""CI/CD tooling: run a buildspec stage with CodeBuild's semantics (run_stage), check the buildspecs and workflows
(check_ci), take template releases (update_template) and keep this package map current (package_graph).
It drives the other packages through make targets.
"""

MAY_IMPORT: tuple[str, ...] = ("model.common",)
