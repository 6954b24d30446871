"""Reading documents: encodings, line endings, directories, stdin, undecodable lines, laziness."""
import codecs
import io
import itertools

import pytest

from albert_ner.infer.textfiles import expand_inputs, read_documents, sniff_encoding

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
    assert sniff_encoding(codecs.BOM_UTF8 + b"x") == "utf-8-sig"
    assert sniff_encoding(codecs.BOM_UTF16_LE + "x".encode("utf-16-le")) == "utf-16"
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
