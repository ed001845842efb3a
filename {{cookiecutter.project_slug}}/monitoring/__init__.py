"""Monitoring image code: the drift baselines written at training time (drift_baseline) and the scheduled drift
job (capture reading, distances, violations in Model Monitor's formats, quality and bias drift, report,
CloudWatch metrics). It decodes payloads with the endpoint's own input_fn.
"""

MAY_IMPORT: tuple[str, ...] = ("model.common", "model.inference")
