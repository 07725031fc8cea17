"""The installed driftloop version (kept in step with pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("driftloop")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
