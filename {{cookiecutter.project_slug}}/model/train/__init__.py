"""Training image code: data loading and validation, preprocessing, training, ONNX export, evaluation and gates,
explanations, the model card, and the entrypoints of the SageMaker jobs (train, prepare, evaluation_job).
"""

MAY_IMPORT: tuple[str, ...] = ("model.common",)
