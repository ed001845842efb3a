"""Release scripts on AWS: register, approve, deploy, promote, roll back, monitor and inspect the SageMaker
endpoint; endpoint checks after a deploy (endpoint_checks). Runs in the AWS environment (no model libraries).
"""

MAY_IMPORT: tuple[str, ...] = ("model.common", "infra")
