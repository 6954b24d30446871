"""Reading documents: encodings, line endings, directories, stdin, undecodable lines, laziness."""
import codecs
import io
import itertools
import os

import pytest

from albert_ner.infer.textfiles import Document, expand_inputs, read_documents, sniff_encoding

LINES = ["张三在北京大学工作。", "Hello 世界 123", "", "最后一行"]


@pytest.mark.parametrize("encoding, bom, newline", [
    ("utf-8", b"", "\n"), ("utf-8", codecs.BOM_UTF8, "\r\n"), ("utf-16-le", codecs.BOM_UTF16_LE, "\r\n"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "\n"), ("gb18030", b"", "\r\n"), ("gbk", b"", "\n"),
])
def test_every_encoding_and_line_ending_gives_the_same_documents(tmp_path, encoding, bom, newline):
    path = tmp_path / "in.txt"
    path.write_bytes(bom + newline.join(LINES).encode(encoding) + newline.encode(encoding))
    docs = list(read_documents([str(path)]))
    assert [d.text for d in docs] == LINES
    assert [d.line for d in docs] == [1, 2, 3, 4] and all(d.error is None for d in docs)


def test_sniffing():
    assert sniff_encoding(codecs.BOM_UTF8 + b"x") == "utf-8"
    assert sniff_encoding(codecs.BOM_UTF16_LE + "x".encode("utf-16-le")) == "utf-16-le"
    assert sniff_encoding(codecs.BOM_UTF32_LE + "x".encode("utf-32-le")) == "utf-32-le"
    assert sniff_encoding("北京\nHello\n".encode("utf-16-be")) == "utf-16-be"  # no BOM
    assert sniff_encoding("北京".encode("utf-8")) == "utf-8"
    assert sniff_encoding("北京".encode("utf-8")[:-1]) == "utf-8"  # a character cut by the window
    assert sniff_encoding("北京欢迎你".encode("gbk")) == "gb18030"


def test_an_undecodable_line_is_reported_and_the_rest_is_read(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("第一行\n".encode() + b"\xff\xfe broken\n" + "第三行\n".encode())
    docs = list(read_documents([str(path)], encoding="utf-8"))
    assert [d.text for d in docs] == ["第一行", "", "第三行"]
    assert docs[1].line == 2 and "cannot decode bytes" in docs[1].error


def test_directories_recurse_with_a_glob_and_stdin_works(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.txt").write_text("一\n", encoding="utf-8")
    (tmp_path / "a" / "b" / "two.txt").write_text("二\n", encoding="utf-8")
    (tmp_path / "a" / "b" / "skip.md").write_text("no\n", encoding="utf-8")
    files = expand_inputs([str(tmp_path / "a"), "-"], glob="*.txt")
    assert files == [str(tmp_path / "a/b/two.txt"), str(tmp_path / "a/one.txt"), "-"]
    assert expand_inputs([str(tmp_path / "a"), "-"], glob="**/*.txt") == files
    assert expand_inputs([str(tmp_path / "a")], glob="b/*.txt") == files[:1]
    docs = list(read_documents(files, stdin=io.BytesIO("三\n四".encode("utf-8"))))
    assert [(d.source.split("/")[-1], d.text) for d in docs] == [
        ("two.txt", "二"), ("one.txt", "一"), ("<stdin>", "三"), ("<stdin>", "四")]
    with pytest.raises(FileNotFoundError, match="nope.txt: no such file"):
        expand_inputs([str(tmp_path / "nope.txt")])


def test_whole_file_mode_keeps_the_text_as_is(tmp_path):
    (tmp_path / "doc.txt").write_bytes(codecs.BOM_UTF8 + "第一行\r\n第二行\n".encode())
    (doc,) = read_documents([str(tmp_path / "doc.txt")], whole_file=True)
    assert doc.text == "第一行\r\n第二行\n" and doc.line == 1


class EndlessStream(io.RawIOBase):
    """An unbounded byte stream of lines; records how much was read."""

    def __init__(self):
        self.served = 0

    def readable(self):
        return True

    def readinto(self, buf):
        chunk = ("北京欢迎你\n" * 1000).encode()[: len(buf)]
        buf[: len(chunk)] = chunk
        self.served += len(chunk)
        return len(chunk)


def test_reading_is_lazy_so_huge_inputs_stream():
    stream = EndlessStream()
    docs = read_documents(["-"], stdin=io.BufferedReader(stream))
    first = list(itertools.islice(docs, 10))
    assert [d.text for d in first] == ["北京欢迎你"] * 10
    assert stream.served < 1 << 20  # read a buffer's worth, not the (endless) file


# --- encodings decided per file from enough bytes, the same way for files and pipes -------------------------

CHINESE = ["张三在北京大学工作。", "李四去了上海。", "王五是中国人民银行的行长。"]


def texts(docs):
    return [d.text for d in docs if d.error is None]


def test_one_stray_latin1_byte_fails_only_its_line(tmp_path):
    lines = [f"{CHINESE[i % 3]}第{i}行" for i in range(300)]
    path = tmp_path / "stray.txt"
    path.write_bytes(b"caf\xe9 au lait\n" + "".join(x + "\n" for x in lines).encode("utf-8"))
    docs = list(read_documents([str(path)]))
    assert texts(docs) == lines  # read as UTF-8, not GB18030
    (bad,) = [d for d in docs if d.error]
    assert bad.line == 1 and "cannot decode" in bad.error and "utf-8" in bad.error


@pytest.mark.parametrize("ascii_head", [5_000, 100_000])  # beyond the old 4 KB peek, and beyond any window
def test_gbk_after_a_long_ascii_head_is_still_gbk(tmp_path, ascii_head):
    head = ["x" * 99] * (ascii_head // 100)
    path = tmp_path / "gbk.txt"
    path.write_bytes("\n".join(head + CHINESE * 20).encode("gbk") + b"\n")
    docs = list(read_documents([str(path)]))
    assert all(d.error is None for d in docs)
    assert texts(docs) == head + CHINESE * 20


def test_a_tiny_gbk_file_is_gb18030(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_bytes(b"hello " + "中".encode("gbk") + b"\n")  # 9 bytes, the last non-ASCII
    assert len(path.read_bytes()) == 9
    (doc,) = read_documents([str(path)])
    assert doc.error is None and doc.text == "hello 中"


class Trickle(io.RawIOBase):
    """A pipe whose bytes arrive a few at a time."""

    def __init__(self, data, step=7):
        self.data, self.step = data, step

    def readable(self):
        return True

    def readinto(self, buf):
        chunk, self.data = self.data[:min(self.step, len(buf))], self.data[min(self.step, len(buf)):]
        buf[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_a_slow_pipe_is_decoded_like_the_same_file(tmp_path, encoding):
    data = ("\n".join(["ascii only"] * 30 + CHINESE * 5) + "\n").encode(encoding)
    (tmp_path / "f.txt").write_bytes(data)
    from_file = list(read_documents([str(tmp_path / "f.txt")]))
    from_pipe = list(read_documents(["-"], stdin=io.BufferedReader(Trickle(data))))
    assert texts(from_pipe) == texts(from_file) == ["ascii only"] * 30 + CHINESE * 5
    assert all(d.error is None for d in from_pipe)


def test_a_file_in_two_encodings_is_reported_once_and_not_tagged(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes("\n".join(CHINESE * 30).encode("utf-8") + b"\n" + "\n".join(CHINESE * 30).encode("gbk") + b"\n")
    docs = list(read_documents([str(path)]))
    assert len(docs) == 1 and docs[0].line == 0 and "not in one encoding" in docs[0].error
    assert "--encoding" in docs[0].error


@pytest.mark.parametrize("first, then", [("utf-8", "gbk"), ("gbk", "utf-8")])
def test_an_encoding_switch_after_the_window_stops_the_file_without_garbage(tmp_path, first, then):
    before = [f"{CHINESE[i % 3]}{i}" for i in range(3000)]  # ~100 KB: the switch is beyond the decision window
    after = [f"{CHINESE[i % 3]}{i}" for i in range(500)]
    path = tmp_path / "switch.txt"
    path.write_bytes("\n".join(before).encode(first) + b"\n" + "\n".join(after).encode(then) + b"\n")
    assert len("\n".join(before).encode(first)) > 65_536
    docs = list(read_documents([str(path)]))
    assert texts(docs) == before  # never a record decoded in the wrong encoding
    errors = [d for d in docs if d.error]
    assert len(errors) <= 11 and "the rest of the file is skipped" in errors[-1].error
    assert errors[0].line == len(before) + 1


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_detected(tmp_path, encoding):
    path = tmp_path / "wide.txt"
    path.write_bytes("\n".join(LINES).encode(encoding) + "\n".encode(encoding))
    docs = list(read_documents([str(path)]))
    assert [d.text for d in docs] == LINES and all(d.error is None for d in docs)


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-16-le", codecs.BOM_UTF16_LE),
                                           ("utf-16-be", codecs.BOM_UTF16_BE), ("gb18030", b"")])
def test_lines_end_at_newline_only_in_every_encoding(tmp_path, encoding, bom):
    path = tmp_path / "cr.txt"
    path.write_bytes(bom + "北\r京\n上海\r\n末\r".encode(encoding))
    docs = list(read_documents([str(path)]))
    assert [d.text for d in docs] == ["北\r京", "上海", "末\r"]  # a lone \r is text; \r\n ends a line


def test_a_gb18030_bom_is_not_part_of_the_text(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\x84\x31\x95\x33" + "北京\n上海\n".encode("gb18030"))
    assert [d.text for d in read_documents([str(path)])] == ["北京", "上海"]
    (doc,) = read_documents([str(path)], whole_file=True)
    assert doc.text == "北京\n上海\n"


@pytest.mark.parametrize("data", [
    b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40,  # an executable
    bytes(range(1, 40)) * 30,  # control bytes, no NUL
    b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
])
def test_a_binary_file_is_reported_once_as_not_text(tmp_path, data):
    path = tmp_path / "prog"
    path.write_bytes(data)
    for whole_file in (False, True):
        docs = list(read_documents([str(path)], whole_file=whole_file))
        assert len(docs) == 1 and docs[0].line == 0 and docs[0].error.startswith("not text")


def unreadable(monkeypatch, module, name, bad):
    """Make `module.name` (open or os.scandir) fail with EACCES for the path `bad`, as for a user without rights
    (the tests may run as root, who can read any file)."""
    import builtins

    real = getattr(module, name, None) or getattr(builtins, name)

    def guarded(path, *args, **kwargs):
        if str(path) == str(bad):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, guarded, raising=False)


def test_an_unreadable_file_is_reported_and_the_next_one_read(tmp_path, monkeypatch):
    from albert_ner.infer import textfiles

    for name in "abc":
        (tmp_path / f"{name}.txt").write_text(f"{name}一\n{name}二\n", encoding="utf-8")
    unreadable(monkeypatch, textfiles, "open", tmp_path / "b.txt")
    docs = list(read_documents([str(tmp_path / f"{n}.txt") for n in "abc"]))
    assert texts(docs) == ["a一", "a二", "c一", "c二"]
    (bad,) = [d for d in docs if d.error]
    assert bad.source == str(tmp_path / "b.txt") and bad.line == 0 and bad.error == "cannot read (Permission denied)"


def test_an_unreadable_subdirectory_is_reported_not_skipped_silently(tmp_path, monkeypatch):
    from albert_ner.infer.textfiles import Unreadable

    (tmp_path / "d" / "locked").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("一\n", encoding="utf-8")
    (tmp_path / "d" / "locked" / "b.txt").write_text("二\n", encoding="utf-8")
    unreadable(monkeypatch, os, "scandir", tmp_path / "d" / "locked")
    found = expand_inputs([str(tmp_path / "d")])
    assert found == [str(tmp_path / "d" / "a.txt"), Unreadable(str(tmp_path / "d" / "locked"), "Permission denied")]
    docs = list(read_documents(found))
    assert docs[-1] == Document(str(tmp_path / "d" / "locked"), 0, "", "cannot read (Permission denied)")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_real_permissions_are_reported(tmp_path):
    (tmp_path / "d" / "locked").mkdir(parents=True)
    (tmp_path / "d" / "locked" / "b.txt").write_text("二\n", encoding="utf-8")
    (tmp_path / "d" / "c.txt").write_text("三\n", encoding="utf-8")
    (tmp_path / "d" / "locked").chmod(0)
    (tmp_path / "d" / "c.txt").chmod(0)
    try:
        docs = list(read_documents(expand_inputs([str(tmp_path / "d")])))
    finally:
        (tmp_path / "d" / "locked").chmod(0o755)
    assert [d.error for d in docs] == ["cannot read (Permission denied)"] * 2


def test_a_glob_matching_nothing_says_so(tmp_path, caplog):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.md").write_text("一\n", encoding="utf-8")
    assert expand_inputs([str(tmp_path / "d")], glob="*.txt") == []
    assert f"{tmp_path / 'd'}: no file in it matches '*.txt'" in caplog.text


def test_excluded_paths_are_left_out_of_directories_only(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name in ("in.txt", "out.jsonl"):
        (d / name).write_text("一\n", encoding="utf-8")
    skip = lambda path: path.endswith("out.jsonl")  # noqa: E731
    assert expand_inputs([str(d)], exclude=skip) == [str(d / "in.txt")]
    assert expand_inputs([str(d / "out.jsonl")], exclude=skip) == [str(d / "out.jsonl")]  # named: the caller's call
