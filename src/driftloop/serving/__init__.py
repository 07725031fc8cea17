"""Serving: deployments, traffic routing, the prediction server and its log."""
