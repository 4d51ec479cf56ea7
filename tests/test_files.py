import os
import stat

import pytest

from hubel.files import atomic_write


def test_atomic_write_replaces_whole_files_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as file:
            file.write(b"half")
            raise RuntimeError("killed while writing")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with atomic_write(target) as file:
        file.write(b"new")
    assert target.read_bytes() == b"new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_keeping_the_previous_file_never_leaves_the_path_missing(tmp_path, monkeypatch):
    import hubel.files

    target, previous = tmp_path / "last.ckpt", tmp_path / "previous.ckpt"
    target.write_bytes(b"one")
    seen = []
    replace = os.replace

    def watched(source, destination):  # what a process polling for the file would find, at each rename
        seen.append(target.exists())
        replace(source, destination)

    monkeypatch.setattr(hubel.files.os, "replace", watched)
    for content in (b"two", b"three"):
        with atomic_write(target, keep_previous=previous) as file:
            file.write(content)
    assert seen == [True, True] and target.read_bytes() == b"three" and previous.read_bytes() == b"two"

    def no_links(source, destination):  # a file system without hard links: renamed, as before
        raise OSError("links not supported")

    monkeypatch.setattr(hubel.files.os, "link", no_links)
    with atomic_write(target, keep_previous=previous) as file:
        file.write(b"four")
    assert seen[-2:] == [True, False] and target.read_bytes() == b"four" and previous.read_bytes() == b"three"
