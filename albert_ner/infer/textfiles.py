"""Documents to tag, read lazily from files, directories and stdin, in whatever encoding they use.

One document per line (the default) or one per file. Lines are read and decoded one at a time,
so a multi-gigabyte file is never held in memory, and a line that cannot be decoded is reported
(file:line) without stopping the rest. Offsets later index the line exactly as decoded here,
without its line terminator.
"""
from __future__ import annotations

import codecs
import dataclasses
import io
import sys
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, List, Optional, Sequence

ENCODINGS_AUTO = "auto"
_SNIFF_BYTES = 1 << 16


@dataclasses.dataclass(frozen=True)
class Document:
    """One unit to tag: its text (no line terminator), where it came from, or why it could not be read."""

    source: str
    line: int  # 1-based line number of the document's first line
    text: str
    error: Optional[str] = None


def expand_inputs(inputs: Sequence[str], glob: str = "*") -> List[str]:
    """Files as given, directories walked recursively (files matching `glob`, sorted), "-" for stdin."""
    out: List[str] = []
    for item in inputs:
        if item == "-":
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            out.extend(str(p) for p in sorted(path.rglob(glob)) if p.is_file())
        elif path.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or directory")
    return out


def sniff_encoding(head: bytes) -> str:
    """The encoding of a byte stream from its first bytes: a BOM (UTF-8/UTF-16), valid UTF-8, else GB18030."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return "utf-8"
        return "gb18030"  # a superset of GBK and GB2312


def _strip_terminator(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith(("\n", "\r")):
        return text[:-1]
    return text


def _byte_lines(stream: BinaryIO, encoding: str, source: str, first_line_bom: bool) -> Iterator[Document]:
    """Byte-oriented encodings (UTF-8, GB18030): split on b"\\n", decode each line on its own."""
    for number, raw in enumerate(stream, 1):
        if number == 1 and first_line_bom and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            text = raw.decode("utf-8" if encoding == "utf-8-sig" else encoding)
        except UnicodeDecodeError as exc:
            yield Document(source, number, "", f"cannot decode bytes {raw[exc.start:exc.end]!r} as {encoding} "
                                               f"({exc.reason})")
            continue
        yield Document(source, number, _strip_terminator(text))


def _text_lines(stream: BinaryIO, encoding: str, source: str) -> Iterator[Document]:
    """Wide encodings (UTF-16): an incremental text decoder, lines split on \\n."""
    reader = io.TextIOWrapper(stream, encoding=encoding, newline="")
    number = 0
    try:
        for number, text in enumerate(reader, 1):
            yield Document(source, number, _strip_terminator(text))
    except UnicodeDecodeError as exc:
        yield Document(source, number + 1, "", f"cannot decode as {encoding} ({exc.reason}); the rest of the "
                                                f"file is skipped")


def read_documents(inputs: Iterable[str], encoding: str = ENCODINGS_AUTO, whole_file: bool = False,
                   stdin: Optional[BinaryIO] = None) -> Iterator[Document]:
    """Documents of every input in order: one per line, or one per file with `whole_file`."""
    for item in inputs:
        source = "<stdin>" if item == "-" else item
        stream = (stdin or sys.stdin.buffer) if item == "-" else open(item, "rb")
        try:
            buffered = io.BufferedReader(stream) if not hasattr(stream, "peek") else stream
            enc = sniff_encoding(buffered.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]) if encoding == ENCODINGS_AUTO \
                else encoding
            if whole_file:
                data = buffered.read()
                try:
                    text = data.decode(enc)
                except UnicodeDecodeError as exc:
                    line = data.count(b"\n", 0, exc.start) + 1
                    yield Document(source, line, "", f"cannot decode bytes {data[exc.start:exc.end]!r} as {enc} "
                                                     f"({exc.reason})")
                    continue
                yield Document(source, 1, text.lstrip("\ufeff"))
            elif enc.startswith("utf-16") or enc.startswith("utf-32"):
                yield from _text_lines(buffered, enc, source)
            else:
                yield from _byte_lines(buffered, enc, source, first_line_bom=enc in ("utf-8-sig", "utf-8"))
        finally:
            if item != "-":
                stream.close()
