"""The loop: pipeline runs (train, evaluate, gate, register) and, later, triggers."""
