"""The artifact store: immutable, content-addressed blobs on any filesystem.

A blob is stored under the hex sha256 of its bytes, so storing the same content
twice stores it once, and a blob can always be checked against its name. The
store sits on a local folder or on any pyarrow / fsspec filesystem (S3, GCS,
Azure, in-memory...)::

    >>> store = ArtifactStore.from_uri("memory://doctest-artifacts")
    >>> digest = store.put_bytes(b"hello")
    >>> digest
    '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
    >>> store.get_bytes(digest)
    b'hello'

Layout under the store's root::

    blobs/sha256/<first 2 hex>/<digest>   the blobs, never modified once written
    tmp/<random>                          writes in progress

A write goes to ``tmp/`` first and is moved under its digest only once complete
(an atomic rename on a local disk), so a crash never leaves a partial blob under
a digest. Reads re-hash by default and raise :class:`ArtifactCorrupted` when the
bytes no longer match.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow
import pyarrow.fs as pafs

from driftloop.core.filesystems import resolve_uri
from driftloop.errors import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFound,
    InputError,
    InputNotFound,
)

__all__ = ["ArtifactStore"]

CHUNK_SIZE = 1 << 20
"""Bytes read or hashed at a time when streaming a blob."""

_DIGEST = re.compile(r"[0-9a-f]{64}")


class ArtifactStore:
    """Immutable blobs named by the sha256 of their content.

    ``filesystem`` is any :class:`pyarrow.fs.FileSystem` and ``root`` the folder
    (or bucket/prefix) inside it; :meth:`from_uri` builds both from a location
    string. The store keeps no state besides the filesystem, so one instance can
    be shared between threads, and concurrent puts of the same content are safe.

    Example::

        store = ArtifactStore.from_uri("artifacts", base_dir=project_dir)
        digest = store.put_file("model.skops")
        with store.open_input(digest) as f:
            ...
    """

    def __init__(self, filesystem: pafs.FileSystem, root: str, *, uri: str | None = None) -> None:
        self._fs = filesystem
        self._local = _is_local(filesystem)
        if self._local:
            root = pathlib.Path(os.path.abspath(root)).as_posix()
        stripped = root.rstrip("/")
        if not stripped and root.startswith("/"):
            stripped = "/"
        self._root = stripped
        if uri is None:
            uri = os.path.normpath(self._root) if self._local else f"{filesystem.type_name}:{root}"
        self._uri = uri
        self._verified: dict[str, tuple[int, int]] = {}

    @classmethod
    def from_uri(cls, uri: str, *, base_dir: pathlib.Path | None = None) -> ArtifactStore:
        """Open the store at ``uri``.

        Accepted forms: a local path (relative ones resolve against ``base_dir``,
        or the working directory), ``file:///abs/path``, ``memory://name`` (an
        fsspec in-memory filesystem, shared within the process), ``s3://``,
        ``gs://``, ``abfs://``, ``hdfs://`` (pyarrow's native clients) and any
        other protocol fsspec knows (``sftp://``, ``az://``, ...).
        """
        location = resolve_uri(uri, base_dir=base_dir, what="artifact store")
        return cls(location.filesystem, location.path, uri=location.display)

    # -- properties -------------------------------------------------------

    @property
    def uri(self) -> str:
        """Where the store is, for messages (an absolute path when local)."""
        return self._uri

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem the blobs live on."""
        return self._fs

    @property
    def root(self) -> str:
        """The store's folder (or bucket/prefix) inside :attr:`filesystem`."""
        return self._root

    def blob_path(self, digest: str) -> str:
        """The path of a blob inside :attr:`filesystem` (whether or not it exists)."""
        return self._path(_blob_rel(_check_digest(digest)))

    def __repr__(self) -> str:
        return f"ArtifactStore({self._uri!r})"

    # -- writing ----------------------------------------------------------

    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` and return its hex sha256; storing it again writes nothing.

        Any bytes-like object works (``memoryview(pyarrow_buffer)`` avoids a copy).
        """
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        return self._write([data], known=digest)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a local file, streamed in chunks, and return its hex sha256."""
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError as exc:
            raise InputNotFound(os.fspath(path)) from exc
        except OSError as exc:
            raise InputError(exc.strerror or str(exc), path=os.fspath(path)) from exc
        with f:
            return self._write(iter(lambda: f.read(CHUNK_SIZE), b""))

    def put_stream(self, chunks: Iterable[bytes]) -> str:
        """Store the concatenation of ``chunks`` and return its hex sha256.

        If the iterable raises, nothing is stored and the error propagates.
        """
        return self._write(chunks)

    def _write(
        self, chunks: Iterable[bytes | bytearray | memoryview], *, known: str | None = None
    ) -> str:
        """Write ``chunks`` to a temporary file, then publish it under its digest.

        ``known`` is the digest when the caller has already hashed the content.
        """
        tmp = self._path(f"tmp/{secrets.token_hex(16)}")
        hasher = hashlib.sha256()
        try:
            with self._io(None, "tmp"):
                self._fs.create_dir(self._path("tmp"), recursive=True)
                with self._fs.open_output_stream(tmp, compression=None) as out:
                    for chunk in chunks:
                        if known is None:
                            hasher.update(chunk)
                        out.write(chunk)
                if self._local:
                    _fsync(tmp)
            digest = known if known is not None else hasher.hexdigest()
            self._publish(tmp, digest)
        except BaseException:
            self._discard(tmp)
            raise
        return digest

    def _publish(self, tmp: str, digest: str) -> None:
        """Move a complete temporary file under its digest, unless it is already there."""
        rel = _blob_rel(digest)
        final = self._path(rel)
        with self._io(None, rel):
            if self._fs.get_file_info(final).type == pafs.FileType.File:
                self._discard(tmp)
                return
            self._fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
            try:
                self._fs.move(tmp, final)
            except OSError:
                # Another writer may have published the same content meanwhile.
                if self._fs.get_file_info(final).type != pafs.FileType.File:
                    raise
                self._discard(tmp)

    def _discard(self, path: str) -> None:
        # Already gone, or never created: nothing to clean.
        with contextlib.suppress(OSError):
            self._fs.delete_file(path)

    # -- reading ----------------------------------------------------------

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """The blob's bytes; with ``verify`` they are re-hashed first.

        Raises :class:`ArtifactNotFound` if no such blob is stored and
        :class:`ArtifactCorrupted` if its bytes do not hash to ``digest``.
        """
        rel = _blob_rel(_check_digest(digest))
        with (
            self._io(digest, rel),
            self._fs.open_input_stream(self._path(rel), compression=None) as f,
        ):
            data = f.read()
        if verify:
            actual = hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise ArtifactCorrupted(digest, actual, path=self._location(rel))
        return bytes(data)

    def open_input(self, digest: str) -> pyarrow.NativeFile:
        """A random-access file on the blob, for pyarrow readers; the caller closes it.

        The content is not verified (call :meth:`verify` for that).
        """
        rel = _blob_rel(_check_digest(digest))
        with self._io(digest, rel):
            return self._fs.open_input_file(self._path(rel))

    def verify(self, digest: str) -> None:
        """Re-hash the blob in chunks; raise :class:`ArtifactCorrupted` on mismatch."""
        rel = _blob_rel(_check_digest(digest))
        hasher = hashlib.sha256()
        with (
            self._io(digest, rel),
            self._fs.open_input_stream(self._path(rel), compression=None) as f,
        ):
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        actual = hasher.hexdigest()
        if actual != digest:
            raise ArtifactCorrupted(digest, actual, path=self._location(rel))

    def exists(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""
        rel = _blob_rel(_check_digest(digest))
        with self._io(digest, rel):
            return bool(self._fs.get_file_info(self._path(rel)).type == pafs.FileType.File)

    def size(self, digest: str) -> int:
        """The blob's size in bytes."""
        rel = _blob_rel(_check_digest(digest))
        path = self._path(rel)
        with self._io(digest, rel):
            info = self._fs.get_file_info(path)
            if info.type != pafs.FileType.File:
                raise ArtifactNotFound(digest, location=self._uri)
            size: int | None = info.size
            if size is None:  # some object stores only report it on open
                with self._fs.open_input_file(path) as f:
                    size = f.size()
        return size

    def delete(self, digest: str) -> bool:
        """Remove the blob; ``True`` if it existed."""
        rel = _blob_rel(_check_digest(digest))
        path = self._path(rel)
        with self._io(digest, rel):
            if self._fs.get_file_info(path).type != pafs.FileType.File:
                return False
            try:
                self._fs.delete_file(path)
            except FileNotFoundError:
                return False  # deleted concurrently
        return True

    def local_path(self, digest: str) -> str | None:
        """The blob's absolute OS path if the store is on the local disk, else ``None``.

        Lets engines such as DuckDB read a stored Parquet file in place. Raises
        :class:`ArtifactNotFound` for a local store that lacks the blob.
        """
        rel = _blob_rel(_check_digest(digest))
        if not self._local:
            return None
        if not self.exists(digest):
            raise ArtifactNotFound(digest, location=self._uri)
        return self._location(rel)

    def verified_local_path(self, digest: str) -> str | None:
        """Like :meth:`local_path`, after verifying the blob's hash.

        A blob verified once is not re-hashed while its size and modification time stay
        the same, so engines that scan the same Parquet files repeatedly pay for the
        check once per process.
        """
        if not self._local:
            return None
        self.verify_once(digest)  # ArtifactNotFound when the blob is missing
        return self._location(_blob_rel(_check_digest(digest)))

    def verify_once(self, digest: str) -> None:
        """:meth:`verify`, skipped for a local blob this store verified before whose
        size and modification time are unchanged (a rewrite or truncation is re-hashed).
        Blobs on other filesystems are verified every time."""
        if not self._local:
            self.verify(digest)
            return
        path = self._location(_blob_rel(_check_digest(digest)))
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise ArtifactNotFound(digest, location=self._uri) from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        if self._verified.get(digest) != stamp:
            self.verify(digest)
            self._verified[digest] = stamp

    def digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order."""
        selector = pafs.FileSelector(
            self._path("blobs/sha256"), recursive=True, allow_not_found=True
        )
        with self._io(None, "blobs/sha256"):
            infos = self._fs.get_file_info(selector)
        found = []
        for info in infos:
            name = info.base_name
            if info.type != pafs.FileType.File or not _DIGEST.fullmatch(name):
                continue
            if info.path.rstrip("/").rsplit("/", 2)[-2] == name[:2]:
                found.append(name)
        return iter(sorted(found))

    # -- helpers ----------------------------------------------------------

    def _path(self, rel: str) -> str:
        if self._root in ("", "/"):
            return self._root + rel
        return f"{self._root}/{rel}"

    def _location(self, rel: str) -> str:
        """Where ``rel`` is, for messages: an OS path when local, else under the uri."""
        if self._local:
            return os.path.normpath(self._path(rel))
        return f"{self._uri}/{rel}"

    @contextlib.contextmanager
    def _io(self, digest: str | None, rel: str) -> Iterator[None]:
        """Turn filesystem errors into artifact errors naming the digest and location."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and digest is not None:
                raise ArtifactNotFound(digest, location=self._uri) from exc
            where = self._location(rel)
            raise ArtifactError(f"{where}: {exc}", digest=digest, location=where) from exc


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ArtifactError(
            f"invalid artifact digest {digest!r}: expected 64 lowercase hex characters (a sha256)",
            digest=str(digest),
        )
    return digest


def _blob_rel(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"


def _is_local(filesystem: pafs.FileSystem) -> bool:
    if isinstance(filesystem, pafs.LocalFileSystem):
        return True
    if isinstance(filesystem, pafs.PyFileSystem):
        handler = filesystem.handler
        if isinstance(handler, pafs.FSSpecHandler):
            protocol: Any = getattr(handler.fs, "protocol", None)
            protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol or ())
            return "file" in protocols or "local" in protocols
    return False


def _fsync(path: str) -> None:
    """Flush a local file's bytes to disk before it is renamed under its digest."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
