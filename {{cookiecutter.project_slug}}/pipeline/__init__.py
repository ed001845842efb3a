"""The ML pipeline: data -> train -> evaluate -> gates -> register, run locally (local_pipeline, local_registry) or
as a SageMaker Pipeline (sagemaker_pipeline; its settings from infra/config, flags and SSM in
sagemaker_settings). Training code runs in its own processes (python -m), as in the
SageMaker jobs, and is never imported. The CI/CD stage files are in pipeline/buildspec; their runner is cicd.
"""

MAY_IMPORT: tuple[str, ...] = ("model.common", "infra")
