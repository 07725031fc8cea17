"""The public surface of the driftloop package."""

from __future__ import annotations

import driftloop


def test_all_lists_exactly_the_public_names_in_sorted_order() -> None:
    """__all__ is sorted and every name in it exists."""
    assert driftloop.__all__ == sorted(driftloop.__all__)
    for name in driftloop.__all__:
        assert hasattr(driftloop, name), name


def test_the_public_names_are_the_ones_users_type() -> None:
    """The top-level package exports the project, source and contract types."""
    public = {n for n in dir(driftloop) if not n.startswith("_")}
    assert public - {
        "cli",
        "client",
        "core",
        "data",
        "errors",
        "evaluation",
        "examples",
        "features",
        "loop",
        "monitoring",
        "project",
        "registry",
        "rollout",
        "serving",
        "training",
        "ui",
    } == set(driftloop.__all__) - {"__version__"}


def test_the_version_is_the_installed_distributions() -> None:
    """driftloop.__version__ matches the package metadata."""
    from importlib.metadata import version

    assert driftloop.__version__ == version("driftloop")
