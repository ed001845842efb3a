"""Contracts the images share: the data contract (schema.json), the artifact format and its scorer, the quality
metrics (scikit-learn: training and monitoring images only), the repository's paths and the sample table. It owns
what a row, a model artifact and a metric are, and imports no other package of the project.
"""

MAY_IMPORT: tuple[str, ...] = ()
