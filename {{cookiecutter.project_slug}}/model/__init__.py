"""The model: its shared contracts, training, serving and tests; its configuration (model/config) is package data."""

MAY_IMPORT: tuple[str, ...] = ()
