"""From a path or URI to a pyarrow filesystem: local folders, pyarrow's native
clients (S3, GCS, HDFS, Azure) and every protocol fsspec knows (``memory://``...).

The artifact store and the readers of input files both resolve locations here, so a
URI that works in one works in the other.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import pyarrow
import pyarrow.fs as pafs

from driftloop.errors import ConfigError, DriftloopError, MissingExtraError

__all__ = ["Location", "resolve_uri"]

# Schemes pyarrow opens natively (with its own C++ clients). Everything else that
# fsspec knows goes through fsspec; "file"/"local" URIs are plain local folders.
_PYARROW_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"})
_LOCAL_SCHEMES = frozenset({"file", "local"})

# fsspec protocol -> the driftloop extra that installs its package.
_EXTRAS = {"s3": "s3", "s3a": "s3"}


@dataclass(frozen=True)
class Location:
    """A filesystem, the path on it, and how to show the location in messages."""

    filesystem: pafs.FileSystem
    path: str
    display: str
    local: bool


def resolve_uri(
    uri: str, *, base_dir: pathlib.Path | None = None, what: str = "location"
) -> Location:
    """Resolve ``uri``: a local path (relative ones against ``base_dir`` or the working
    directory), ``file:///abs/path``, ``s3://``, ``gs://``, ``abfs://``, ``hdfs://``
    (pyarrow's clients), or any other protocol fsspec knows (``memory://``, ``sftp://``...).

    ``what`` names the thing in errors ("artifact store", "input").
    """
    scheme, sep, _ = uri.partition("://")
    if not sep:
        path = pathlib.Path(uri).expanduser()
        if not path.is_absolute():
            path = (base_dir if base_dir is not None else pathlib.Path.cwd()) / path
        resolved = os.path.abspath(path)
        return Location(pafs.LocalFileSystem(), resolved, resolved, True)
    scheme = scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        filesystem, root = _pyarrow_from_uri(uri, what)
        return Location(filesystem, root, os.path.normpath(root), True)
    if scheme in _PYARROW_SCHEMES:
        try:
            filesystem, root = _pyarrow_from_uri(uri, what)
        except (ImportError, pyarrow.ArrowNotImplementedError):
            # This pyarrow build lacks the client; fsspec may still have one.
            filesystem, root = _fsspec_from_uri(uri, scheme, what)
        return Location(filesystem, root, uri.rstrip("/"), False)
    filesystem, root = _fsspec_from_uri(uri, scheme, what)
    return Location(filesystem, root, uri.rstrip("/"), False)


def _pyarrow_from_uri(uri: str, what: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]
    except pyarrow.ArrowInvalid as exc:
        raise ConfigError(f"invalid {what} uri {uri!r}: {exc}", key="uri") from exc
    except OSError as exc:
        raise DriftloopError(f"cannot open the {what} {uri}: {exc}", location=uri) from exc


def _fsspec_from_uri(uri: str, protocol: str, what: str) -> tuple[pafs.FileSystem, str]:
    import fsspec

    try:
        fs_class = fsspec.get_filesystem_class(protocol)
    except ValueError as exc:
        raise ConfigError(
            f"unknown protocol {protocol!r} in {what} uri {uri!r}", key="uri"
        ) from exc
    except ImportError as exc:
        cause = exc.__cause__
        package = getattr(cause, "name", None) or protocol
        feature = f"the {what} at {uri}"
        extra = _EXTRAS.get(protocol)
        if extra is not None:
            raise MissingExtraError(feature, extra=extra, package=package) from exc
        raise ConfigError(
            f"{feature} needs the {package!r} package ({exc}): pip install {package}", key="uri"
        ) from exc
    try:
        fs = fsspec.filesystem(protocol)
    except (TypeError, ValueError, OSError) as exc:
        raise ConfigError(f"cannot open {what} uri {uri!r} with fsspec: {exc}", key="uri") from exc
    root = str(fs_class._strip_protocol(uri))
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root
