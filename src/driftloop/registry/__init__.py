"""The model registry: immutable model versions, aliases moved by compare-and-set, lineage."""
