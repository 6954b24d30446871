"""Archive extraction never writes outside the target: crafted archives are refused before anything lands."""
import io
import os
import stat
import struct
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
    alias = tmp_path / "ernie/params/alias"  # a link inside the archive is unpacked as a copy, never as a link
    assert not alias.is_symlink() and alias.read_bytes() == b"\0" * 8
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


def tree(path):
    """Every path under path (links not followed), relative, sorted: what an extraction left on disk."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


CHAIN = [("good.txt", "file", b"good"), ("b", "symlink", "."), ("a", "symlink", "b/.."), ("c", "symlink", "a/..")]


@pytest.mark.parametrize("last, message", [
    (("c/OUTSIDE", "file", b"pwned"), "member 'c/OUTSIDE' lies under 'c', which is a symbolic link, not a folder"),
    (("c/OUTSIDE", "hardlink", "good.txt"), "member 'c/OUTSIDE' lies under 'c', which is a symbolic link"),
    (None, r"symbolic link 'b' -> '\.' points at a folder"),  # the chain alone, to be used by a later archive
])
def test_symlink_chain_from_the_issue_writes_nothing(tmp_path, last, message):
    # from target = tmp/deep/target, the chain resolves on disk to a = tmp/deep and c = tmp
    (tmp_path / "deep").mkdir()
    tar = make_tar(tmp_path / "chain.tar.gz", CHAIN + ([last] if last else []))
    target = tmp_path / "deep/target"
    with pytest.raises(UnsafeArchiveError, match=r"chain\.tar\.gz: " + message):
        extract(tar, target)
    assert not target.exists() and tree(tmp_path / "deep") == []
    assert not (tmp_path / "OUTSIDE").exists()


@pytest.mark.parametrize("members, message", [
    ([("sub", "dir", None), ("to_dir", "symlink", "sub")], r"symbolic link 'to_dir' -> 'sub' points at a folder"),
    ([("dangling", "symlink", "nothing")], r"'dangling' -> 'nothing' names no member of the archive"),
    ([("x", "symlink", "y"), ("y", "symlink", "x")], "is part of a loop of links"),
    ([("f", "file", b"1"), ("d", "dir", None), ("l", "symlink", "d"), ("m", "symlink", "l/../f")],
     "points at a folder|goes through 'l', which is a symbolic link"),
    ([("f", "file", b"1"), ("m", "symlink", "l/../f"), ("l", "symlink", "f")],
     r"'m' -> 'l/\.\./f' goes through 'l', which is a symbolic link, not a folder"),
    ([("f", "file", b"1"), ("l", "symlink", "f"), ("l/inner", "file", b"2")],
     "member 'l/inner' lies under 'l', which is a symbolic link, not a folder"),
    ([("f", "file", b"1"), ("f/inner", "file", b"2")], "member 'f/inner' lies under 'f', which is a file"),
])
def test_links_that_do_not_name_a_file_of_the_archive_are_refused(tmp_path, members, message):
    tar = make_tar(tmp_path / "links.tar", members)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(tar, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_bad_hard_link_after_good_files_writes_nothing(tmp_path):
    tar = make_tar(tmp_path / "late.tar.gz", [("good.txt", "file", b"good"), ("params", "dir", None),
                                              ("params/w", "file", b"w"), ("bad", "hardlink", "sub/../x")])
    with pytest.raises(UnsafeArchiveError, match=r"late\.tar\.gz: hard link 'bad' -> 'sub/\.\./x' goes through 'sub'"):
        extract(tar, tmp_path / "target")
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize("members", [
    [("ok.txt", "file", b"ok"), ("a.txt", "file", b"1"), ("a.txt", "file", b"2")],
    [("ok.txt", "file", b"ok"), ("x", "dir", None), ("./x", "file", b"2")],
    [("ok.txt", "file", b"ok"), ("x", "file", b"1"), ("x/", "symlink", "ok.txt")],
])
def test_duplicate_member_names_are_an_error_before_anything_is_written(tmp_path, members):
    tar = make_tar(tmp_path / "dup.tar", members)
    with pytest.raises(UnsafeArchiveError, match=r"dup\.tar: member .* is a duplicate"):
        extract(tar, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_repeated_folder_entries_are_harmless(tmp_path):
    tar = make_tar(tmp_path / "dirs.tar", [("./", "dir", None), ("d", "dir", None), ("d/", "dir", None),
                                           ("./d/f", "file", b"f")])
    assert extract(tar, tmp_path / "target") == [tmp_path / "target/d/f"]
    assert tree(tmp_path / "target") == ["d", "d/f"]


def test_links_to_files_of_the_archive_become_independent_copies(tmp_path):
    data = bytes(range(256)) * 3
    tar = make_tar(tmp_path / "copies.tar.gz", [
        ("hard", "hardlink", "later.bin"),            # a hard link to a later member
        ("dir/soft", "symlink", "../hard"),           # a symbolic link to that hard link
        ("dir/twice", "symlink", "./soft"),           # and a chain of two
        ("later.bin", "file", data)])
    target = tmp_path / "target"
    written = extract(tar, target)
    assert sorted(written) == sorted(target / n for n in ("hard", "dir/soft", "dir/twice", "later.bin"))
    inodes = set()
    for path in written:
        assert not os.path.islink(path) and path.read_bytes() == data
        inodes.add(path.stat().st_ino)
    assert len(inodes) == 4  # copies, not hard links: rewriting one leaves the others alone
    z = make_zip(tmp_path / "links.zip", [("f.txt", b"data", None), ("sub/l", b"../f.txt", stat.S_IFLNK | 0o777)])
    extract(z, tmp_path / "zipped")
    assert not os.path.islink(tmp_path / "zipped/sub/l") and (tmp_path / "zipped/sub/l").read_bytes() == b"data"


@pytest.mark.parametrize("planted", ["folder", "file"])
def test_a_symbolic_link_already_in_the_target_is_not_written_through(tmp_path, planted):
    outside, target = tmp_path / "outside", tmp_path / "target"
    outside.mkdir()
    (outside / "model.bin").write_bytes(b"original")
    target.mkdir()
    if planted == "folder":
        os.symlink(outside, target / "sub")  # e.g. left by an earlier, unsafe extraction
        member, link = "sub/model.bin", target / "sub"
    else:
        os.symlink(outside / "model.bin", target / "model.bin")
        member, link = "model.bin", target / "model.bin"
    tar = make_tar(tmp_path / "next.tar.gz", [("first.txt", "file", b"1"), (member, "file", b"pwned")])
    with pytest.raises(UnsafeArchiveError, match=rf"next\.tar\.gz: {link} is already a symbolic link on disk"):
        extract(tar, target)
    assert (outside / "model.bin").read_bytes() == b"original" and tree(outside) == ["model.bin"]
    assert tree(target) == [link.name] and not (target / "first.txt").exists()


def test_a_file_hard_linked_outside_is_replaced_not_rewritten(tmp_path):
    outside, target = tmp_path / "outside.bin", tmp_path / "target"
    outside.write_bytes(b"original")
    target.mkdir()
    os.link(outside, target / "model.bin")
    extract(make_tar(tmp_path / "new.tar", [("model.bin", "file", b"new weights")]), target)
    assert (target / "model.bin").read_bytes() == b"new weights" and outside.read_bytes() == b"original"


def test_target_that_is_itself_a_symbolic_link_is_used(tmp_path):
    (tmp_path / "disk").mkdir()
    os.symlink(tmp_path / "disk", tmp_path / "cache")  # a cache moved to another disk by hand
    extract(make_tar(tmp_path / "a.tar", [("w/x.bin", "file", b"x")]), tmp_path / "cache")
    assert (tmp_path / "disk/w/x.bin").read_bytes() == b"x"


def test_zip_member_larger_than_declared_is_refused_and_nothing_is_kept(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr("big.bin", b"A" * 100_000, compress_type=zipfile.ZIP_DEFLATED)
    data = bytearray(buf.getvalue())
    local, central = data.find(b"big.bin") - 30, data.rfind(b"big.bin") - 46
    assert data[local:local + 4] == b"PK\x03\x04" and data[central:central + 4] == b"PK\x01\x02"
    struct.pack_into("<I", data, local + 22, 10)  # uncompressed size in the local header
    struct.pack_into("<I", data, central + 24, 10)  # and in the central directory
    (tmp_path / "bomb.zip").write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip: member 'big\.bin'"):
        extract(tmp_path / "bomb.zip", tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_a_stream_longer_than_declared_is_cut_off():
    from pretrained.archive import _copy_stream  # the zip bomb guard, under the stdlib's own cut-off
    out = io.BytesIO()
    with pytest.raises(UnsafeArchiveError, match=r"x\.zip: member 'm' yields more than its declared 1048576 bytes"):
        _copy_stream("x.zip", "m", io.BytesIO(b"z" * ((1 << 20) + 1)), out, 1 << 20)
    assert len(out.getvalue()) <= 1 << 20
    assert _copy_stream("x.zip", "m", io.BytesIO(b"z" * 5), io.BytesIO(), 5) == 5


@pytest.mark.parametrize("members, limits, message", [
    ([("big", "file", b"x" * 100)], dict(max_bytes=99), "unpack to 100 bytes"),
    ([("f", "file", b"x" * 10)] + [(f"l{i}", "symlink", "f") for i in range(10)], dict(max_bytes=99),
     r"unpack to 110 bytes \(link copies included\), over the limit of 99"),
    ([("a", "file", b""), ("b", "file", b""), ("c", "file", b"")], dict(max_members=2), "more than 2 members"),
])
def test_limits_refuse_before_writing(tmp_path, members, limits, message):
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(make_tar(tmp_path / "many.tar", members), tmp_path / "target", **limits)
    assert not (tmp_path / "target").exists()
