"""Register sagemaker-mlops-template as a custom SageMaker Projects template (``python -m catalog --help``)."""
