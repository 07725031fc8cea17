"""Training: model flavors that save a fitted model to bytes and load it back safely."""
