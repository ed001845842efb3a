"""Fleet propagation: take a template release to many generated repositories (``python -m fleet update``)."""
