"""The artifact store, run on a local folder and on an fsspec in-memory filesystem."""

from __future__ import annotations

import hashlib
import importlib.util
import pathlib
import random
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from driftloop.core.artifacts import CHUNK_SIZE, ArtifactStore
from driftloop.errors import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFound,
    ConfigError,
    InputNotFound,
    MissingExtraError,
)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[ArtifactStore]:
    """A fresh, empty store on each backend."""
    if request.param == "local":
        yield ArtifactStore.from_uri(str(tmp_path / "artifacts"))
        return
    memory = ArtifactStore.from_uri(f"memory://driftloop-test-{uuid.uuid4().hex}")
    yield memory
    if memory.filesystem.get_file_info(memory.root).type == pafs.FileType.Directory:
        memory.filesystem.delete_dir(memory.root)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tmp_entries(store: ArtifactStore) -> list[str]:
    selector = pafs.FileSelector(f"{store.root}/tmp", recursive=True, allow_not_found=True)
    return [info.path for info in store.filesystem.get_file_info(selector)]


def _overwrite_blob(store: ArtifactStore, digest: str, data: bytes) -> None:
    with store.filesystem.open_output_stream(store.blob_path(digest)) as out:
        out.write(data)


def _big_payload() -> bytes:
    return random.Random(7).randbytes(2 * CHUNK_SIZE + 12345)


def test_round_trip(store: ArtifactStore) -> None:
    """Bytes put into the store come back unchanged under their sha256 hex digest."""
    digest = store.put_bytes(b"hello artifacts")
    assert digest == _sha256(b"hello artifacts")
    assert store.get_bytes(digest) == b"hello artifacts"
    assert store.exists(digest)
    assert store.size(digest) == len(b"hello artifacts")


def test_empty_blob_round_trip(store: ArtifactStore) -> None:
    """An empty blob is a valid artifact like any other."""
    digest = store.put_bytes(b"")
    assert digest == _sha256(b"")
    assert store.get_bytes(digest) == b""
    assert store.size(digest) == 0


def test_same_content_is_stored_once(store: ArtifactStore) -> None:
    """Putting the same content twice returns the same digest and keeps a single blob."""
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    third = store.put_stream([b"sa", b"me"])
    assert first == second == third
    assert list(store.digests()) == [first]


def test_put_file_and_put_stream_match_put_bytes(
    store: ArtifactStore, tmp_path: pathlib.Path
) -> None:
    """A file streamed in chunks and an iterable of chunks get the digest of their bytes."""
    data = _big_payload()
    source = tmp_path / "payload.bin"
    source.write_bytes(data)
    from_file = store.put_file(source)
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    from_stream = store.put_stream(iter(chunks))
    assert from_file == from_stream == _sha256(data)
    assert store.put_bytes(data) == from_file
    assert store.get_bytes(from_file) == data
    assert store.size(from_file) == len(data)


def test_put_file_of_a_missing_path_is_an_input_error(
    store: ArtifactStore, tmp_path: pathlib.Path
) -> None:
    """Storing a local file that does not exist names that file."""
    missing = tmp_path / "nope.bin"
    with pytest.raises(InputNotFound) as excinfo:
        store.put_file(missing)
    assert str(missing) in str(excinfo.value)


def test_corrupted_blob_is_an_error_that_names_it(store: ArtifactStore) -> None:
    """A blob whose bytes changed on disk fails get_bytes and verify, naming its digest."""
    digest = store.put_bytes(b"original content")
    _overwrite_blob(store, digest, b"tampered content")
    with pytest.raises(ArtifactCorrupted) as excinfo:
        store.get_bytes(digest)
    assert excinfo.value.digest == digest
    assert excinfo.value.actual == _sha256(b"tampered content")
    assert digest in str(excinfo.value)
    with pytest.raises(ArtifactCorrupted, match=digest):
        store.verify(digest)
    assert store.get_bytes(digest, verify=False) == b"tampered content"


def test_intact_blob_verifies(store: ArtifactStore) -> None:
    """Verifying an untouched blob, even one larger than a chunk, succeeds silently."""
    digest = store.put_bytes(_big_payload())
    store.verify(digest)


def test_missing_digest_is_not_found(store: ArtifactStore) -> None:
    """Reading a digest that was never stored raises ArtifactNotFound naming it."""
    digest = _sha256(b"never stored")
    assert not store.exists(digest)
    readers: list[Callable[[str], object]] = [
        store.get_bytes,
        store.open_input,
        store.verify,
        store.size,
    ]
    for read in readers:
        with pytest.raises(ArtifactNotFound, match=digest):
            read(digest)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "../../etc/passwd",
        "A" * 64,
        "g" * 64,
        "a" * 63,
        "a" * 65,
        "a" * 64 + "\n",
        "aa/" + "a" * 61,
    ],
)
def test_malformed_digest_is_rejected(store: ArtifactStore, bad: str) -> None:
    """A digest that is not 64 lowercase hex characters is refused before any path is built."""
    calls: list[Callable[[str], object]] = [
        store.get_bytes,
        store.open_input,
        store.verify,
        store.exists,
        store.size,
        store.delete,
        store.local_path,
        store.blob_path,
    ]
    for call in calls:
        with pytest.raises(ArtifactError, match="64 lowercase hex") as excinfo:
            call(bad)
        assert type(excinfo.value) is ArtifactError


def test_delete_removes_a_blob_once(store: ArtifactStore) -> None:
    """Deleting a blob reports True the first time, False after, and the blob is gone."""
    keep = store.put_bytes(b"keep")
    drop = store.put_bytes(b"drop")
    assert store.delete(drop) is True
    assert store.delete(drop) is False
    assert not store.exists(drop)
    assert list(store.digests()) == [keep]


def test_digests_lists_every_blob(store: ArtifactStore) -> None:
    """digests() yields each stored digest once, sorted, and nothing else."""
    assert list(store.digests()) == []
    stored = {store.put_bytes(f"blob {i}".encode()) for i in range(20)}
    assert list(store.digests()) == sorted(stored)


def test_local_path_points_at_the_blob_on_disk_only(store: ArtifactStore) -> None:
    """local_path is the blob's real file on a local store and None elsewhere."""
    digest = store.put_bytes(b"parquet bytes, say")
    path = store.local_path(digest)
    if isinstance(store.filesystem, pafs.LocalFileSystem):
        assert path is not None
        assert pathlib.Path(path).is_absolute()
        assert pathlib.Path(path).read_bytes() == b"parquet bytes, say"
        with pytest.raises(ArtifactNotFound):
            store.local_path(_sha256(b"absent"))
    else:
        assert path is None


def test_open_input_feeds_pyarrow_parquet(store: ArtifactStore) -> None:
    """A stored Parquet file can be read back through open_input by pyarrow.parquet."""
    table = pa.table({"id": [1, 2, 3], "score": [0.5, 0.25, 0.125]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    digest = store.put_bytes(sink.getvalue().to_pybytes())
    with store.open_input(digest) as source:
        assert pq.read_table(source).equals(table)


def test_puts_leave_no_temporary_files(store: ArtifactStore, tmp_path: pathlib.Path) -> None:
    """After every kind of put, including repeated ones, the tmp folder is empty."""
    source = tmp_path / "file.bin"
    source.write_bytes(b"from a file")
    store.put_bytes(b"from bytes")
    store.put_bytes(b"from bytes")
    store.put_file(source)
    store.put_file(source)
    store.put_stream([b"from ", b"a stream"])
    store.put_stream([b"from a", b" stream"])
    assert _tmp_entries(store) == []


def test_failed_stream_stores_nothing(store: ArtifactStore) -> None:
    """A stream that fails midway leaves neither a blob nor a temporary file behind."""

    def broken() -> Iterator[bytes]:
        yield b"partial "
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        store.put_stream(broken())
    assert list(store.digests()) == []
    assert _tmp_entries(store) == []


def test_concurrent_puts_of_the_same_content_agree(store: ArtifactStore) -> None:
    """Many threads putting the same content all get its digest and one intact blob remains."""
    data = _big_payload()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.put_stream([data]), range(16)))
    assert set(results) == {_sha256(data)}
    assert list(store.digests()) == [_sha256(data)]
    store.verify(_sha256(data))
    assert _tmp_entries(store) == []


def test_memory_stores_with_different_names_are_separate() -> None:
    """Two memory:// stores with different names do not see each other's blobs."""
    one = ArtifactStore.from_uri(f"memory://driftloop-test-{uuid.uuid4().hex}")
    two = ArtifactStore.from_uri(f"memory://driftloop-test-{uuid.uuid4().hex}")
    digest = one.put_bytes(b"only in one")
    try:
        assert one.exists(digest)
        assert not two.exists(digest)
    finally:
        one.filesystem.delete_dir(one.root)


def test_from_uri_resolves_relative_paths_against_base_dir(tmp_path: pathlib.Path) -> None:
    """A relative store path is taken relative to base_dir, and the uri is absolute."""
    store = ArtifactStore.from_uri("data/artifacts", base_dir=tmp_path)
    expected = tmp_path / "data" / "artifacts"
    assert store.uri == str(expected)
    digest = store.put_bytes(b"relative")
    assert (expected / "blobs" / "sha256" / digest[:2] / digest).read_bytes() == b"relative"


def test_from_uri_accepts_file_uris(tmp_path: pathlib.Path) -> None:
    """A file:// uri opens the same local folder as its plain path."""
    by_uri = ArtifactStore.from_uri((tmp_path / "store").as_uri())
    by_path = ArtifactStore.from_uri(str(tmp_path / "store"))
    digest = by_uri.put_bytes(b"shared")
    assert by_path.get_bytes(digest) == b"shared"
    assert by_uri.local_path(digest) == by_path.local_path(digest)


def test_unknown_protocol_is_a_config_error() -> None:
    """A uri whose protocol no filesystem handles is a ConfigError that names the uri."""
    with pytest.raises(ConfigError, match="nosuchproto://bucket/x"):
        ArtifactStore.from_uri("nosuchproto://bucket/x")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_missing_fsspec_package_names_the_extra() -> None:
    """An fsspec protocol whose package is absent asks for the matching driftloop extra."""
    with pytest.raises(MissingExtraError) as excinfo:
        ArtifactStore.from_uri("s3a://bucket/prefix")
    assert excinfo.value.extra == "s3"
    assert excinfo.value.package == "s3fs"
    assert "driftloop[s3]" in str(excinfo.value)


def test_a_verified_local_path_is_rechecked_when_the_blob_changes(tmp_path: pathlib.Path) -> None:
    """verified_local_path hashes a blob once, and again after its bytes change on disk."""
    store = ArtifactStore.from_uri(str(tmp_path / "store"))
    digest = store.put_bytes(b"payload")
    path = store.verified_local_path(digest)
    assert path is not None
    assert pathlib.Path(path).read_bytes() == b"payload"
    assert store.verified_local_path(digest) == path
    pathlib.Path(path).chmod(0o644)
    pathlib.Path(path).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupted, match=digest):
        store.verified_local_path(digest)
