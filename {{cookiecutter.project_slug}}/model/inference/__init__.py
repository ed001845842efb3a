"""Inference image code: SageMaker's hosting contract (/ping and /invocations on port 8080), the handler functions
(model_fn, input_fn, predict_fn, output_fn), local data capture and the load benchmark. It runs without
scikit-learn or pandas, so it never imports training code.
"""

MAY_IMPORT: tuple[str, ...] = ("model.common",)
