"""Batch scoring with SageMaker Batch Transform's semantics: the job settings under CreateTransformJob's names and
the DataProcessing JSONPath filters (transform, standard library only, so the AWS side can build a
CreateTransformJob request from the same settings), and the local runner that drives the real inference server as
Batch Transform drives a container (run), with per-record attributions (explain) and a benchmark (bench). Never
part of an image: it is a client of the inference server, run from the development environment.
"""

MAY_IMPORT: tuple[str, ...] = ("model.common", "model.inference", "model.train")
