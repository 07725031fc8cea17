"""Rollout: deployment strategies, progressive analysis, promotion and rollback."""
