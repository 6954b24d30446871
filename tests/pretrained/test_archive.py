"""Archive extraction never writes outside the target: crafted archives are refused before anything lands."""
import io
import stat
import tarfile
import zipfile

import pytest

from pretrained.archive import UnsafeArchiveError, extract


def make_tar(path, members):
    """members: (name, kind, payload) with kind file/dir/symlink/hardlink/fifo."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            tf.addfile(info)
    return path


def make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, payload)
    return path


def test_release_layouts_extract(tmp_path):
    tar = make_tar(tmp_path / "ERNIE_stable-1.0.1.tar.gz", [
        ("params", "dir", None), ("params/word_embedding", "file", b"\0" * 8),
        ("ernie_config.json", "file", b"{}"), ("vocab.txt", "file", b"[PAD]\t0\n"),
        ("params/alias", "symlink", "word_embedding")])
    extract(tar, tmp_path / "ernie")
    assert (tmp_path / "ernie/params/word_embedding").read_bytes() == b"\0" * 8
    assert (tmp_path / "ernie/params/alias").resolve() == (tmp_path / "ernie/params/word_embedding").resolve()
    z = make_zip(tmp_path / "albert_base_zh.zip", [("albert_base_zh/", b"", None),
                                                    ("albert_base_zh/albert_model.ckpt.index", b"idx", None)])
    extract(z, tmp_path / "albert")
    assert (tmp_path / "albert/albert_base_zh/albert_model.ckpt.index").read_bytes() == b"idx"


@pytest.mark.parametrize("members, message", [
    ([("/etc/evil", "file", b"x")], "absolute path"),
    ([("ok.txt", "file", b"x"), ("a/../../evil", "file", b"x")], r"climbs out with '\.\.'"),
    ([("link", "symlink", "/etc/passwd")], "points outside the target"),
    ([("sub", "dir", None), ("sub/link", "symlink", "../../outside")], "points outside the target"),
    ([("hard", "hardlink", "../outside")], "climbs out|points outside"),
    ([("pipe", "fifo", None)], "device, FIFO or other special file"),
])
def test_crafted_tars_are_refused_and_nothing_is_written(tmp_path, members, message):
    tar = make_tar(tmp_path / "bad.tar.gz", members)
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=message) as err:
        extract(tar, target)
    assert "bad.tar.gz" in str(err.value)
    assert not target.exists()
    assert not (tmp_path.parent / "outside").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("members, message", [
    ([("../evil.txt", b"x", None)], r"climbs out with '\.\.'"),
    ([("/abs.txt", b"x", None)], "absolute path"),
    ([("C:/win.txt", b"x", None)], "absolute path"),
    ([("link", b"/etc/passwd", stat.S_IFLNK | 0o777)], "symbolic link"),
])
def test_crafted_zips_are_refused_and_nothing_is_written(tmp_path, members, message):
    z = make_zip(tmp_path / "bad.zip", [("fine.txt", b"ok", None)] + members)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(z, tmp_path / "target")
    assert not (tmp_path / "target").exists() and not (tmp_path / "evil.txt").exists()
