"""The blob files and the spooling writer, without a database."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from postel.errors import NotFound, StoreError
from postel.store.blobs import BlobFiles, SpoolingBlobWriter, is_blob_key


@pytest.fixture
def files(tmp_path: Path) -> BlobFiles:
    f = BlobFiles(tmp_path / "blobs")
    f.prepare()
    return f


async def test_small_blob_stays_in_memory_and_rides_inline(files: BlobFiles) -> None:
    writer = SpoolingBlobWriter(files, inline_max=100, spill_threshold=200)
    writer.write(b"hello ")
    writer.write(b"world")
    ref = await writer.commit()
    assert ref.key == hashlib.sha256(b"hello world").hexdigest()
    assert (ref.size, ref.inline) == (11, b"hello world")
    assert list(files.keys()) == []
    assert list(files.tmp.iterdir()) == []
    with pytest.raises(StoreError):
        await writer.commit()


async def test_spill_to_tmp_then_install_by_rename(files: BlobFiles) -> None:
    writer = SpoolingBlobWriter(files, inline_max=100, spill_threshold=200)
    data = bytes(range(256)) * 3
    writer.write(data[:150])
    assert list(files.tmp.iterdir()) == []
    writer.write(data[150:])
    assert len(list(files.tmp.iterdir())) == 1
    ref = await writer.commit()
    assert ref.inline is None and ref.size == len(data)
    assert files.path(ref.key).read_bytes() == data
    assert files.path(ref.key).parent.name == ref.key[:2]
    assert list(files.tmp.iterdir()) == []
    assert files.read_chunk(ref.key, 700, 100) == data[700:]


async def test_between_inline_and_spill_is_written_at_commit(files: BlobFiles) -> None:
    writer = SpoolingBlobWriter(files, inline_max=10, spill_threshold=1000)
    writer.write(b"x" * 50)
    ref = await writer.commit()
    assert files.read(ref.key) == b"x" * 50


async def test_same_bytes_twice_is_one_file(files: BlobFiles) -> None:
    refs = []
    for _ in range(2):
        writer = SpoolingBlobWriter(files, inline_max=10, spill_threshold=20)
        writer.write(b"y" * 64)
        refs.append(await writer.commit())
    assert refs[0] == refs[1]
    assert list(files.keys()) == [refs[0].key]
    assert list(files.tmp.iterdir()) == []


def test_keys_cannot_name_files_outside_the_blob_dir(files: BlobFiles) -> None:
    for bad in ("../" + "a" * 61, "A" * 64, "a" * 63, "/etc/passwd", "a" * 62 + "/x"):
        assert not is_blob_key(bad)
        with pytest.raises(StoreError):
            files.path(bad)
    with pytest.raises(NotFound):
        files.read("0" * 64)


def test_clear_tmp_counts_files(files: BlobFiles) -> None:
    for n in range(3):
        (files.tmp / f"blob-{n}").write_bytes(b"partial")
    assert files.clear_tmp() == 3
    assert files.clear_tmp() == 0


def test_temp_files_carry_their_process_and_only_that_process_s_are_cleared(
    files: BlobFiles,
) -> None:
    own, path = files.new_temp()
    own.close()
    assert path.name.startswith(f"blob-{os.getpid()}-")
    for pid in (12, 123, 1234):
        for n in range(2):
            (files.tmp / f"blob-{pid}-{n}").write_bytes(b"partial")
    assert files.clear_tmp_of(12) == 2
    left = sorted(f.name for f in files.tmp.iterdir())
    assert left == sorted([path.name, "blob-123-0", "blob-123-1", "blob-1234-0", "blob-1234-1"])
    assert files.clear_tmp_of(12) == 0
