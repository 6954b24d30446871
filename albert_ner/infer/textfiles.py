"""Documents to tag, read lazily from files, directories and stdin, in whatever encoding they use.

One document per line (the default) or one per file. A line ends at "\\n" (a "\\r" just before it
is dropped; a lone "\\r" is text) in every encoding. Lines are read and decoded one at a time, so a
multi-gigabyte file is never held in memory; a line that cannot be decoded is reported (file:line)
without stopping the rest; a file that cannot be read, is not text or is not in one encoding is
reported once (line 0). Offsets later index the line exactly as decoded here, without its terminator.

With `decompress`, a gzip, xz or bzip2 file (told by its first bytes, whatever its name) is read through
its decompressor; corrupt or truncated compressed data is reported like an unreadable file.

Encoding "auto" is decided per file from bytes read before its first document, so a file and a
pipe give the same answer however fast the bytes arrive:
1. a byte-order mark: UTF-8, UTF-16 LE/BE, UTF-32 LE/BE or GB18030 (never part of the text);
2. UTF-16 without a mark: in the first 64 KiB, NUL bytes at (nearly) only odd or only even offsets;
3. not text (reported, file skipped): other NUL bytes, a binary file signature, many control bytes;
4. else UTF-8 or GB18030 (a superset of GBK), whichever fewer lines misfit among 64 KiB of lines
   from the first non-ASCII line on (ASCII lines before it read the same either way; ties: UTF-8).
   A line misfits UTF-8 if it is not valid UTF-8; it misfits GB18030 if it is not valid GB18030
   or is valid UTF-8 with 4+ non-ASCII characters (GBK text almost never is).
A misfit line is reported and skipped. A file with more than 10 misfit lines, in a row (ASCII lines
aside) or more than 1% of its non-ASCII lines, is not in one encoding: reported once, whole if that
shows in the decision window (nothing of it is tagged), else from that line on (the rest is skipped).
"""
from __future__ import annotations

import bz2
import codecs
import dataclasses
import gzip
import io
import logging
import lzma
import os
import stat
import sys
import zlib
from pathlib import Path, PurePath
from typing import BinaryIO, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

log = logging.getLogger(__name__)

ENCODINGS_AUTO = "auto"
WINDOW_BYTES = 1 << 16  # bytes an encoding is decided from
MISFIT_LINES = 10  # a file may have this many lines that do not fit its encoding ...
MISFIT_SHARE = 0.01  # ... or this share of its non-ASCII lines, whichever is more
UTF8_EVIDENCE_CHARS = 4  # a valid UTF-8 line with this many non-ASCII characters is UTF-8, not GB18030

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"), (b"\x84\x31\x95\x33", "gb18030"))
_SIGNATURES = {b"\x7fELF": "an executable (ELF)", b"PK\x03\x04": "a ZIP archive (or docx/xlsx/jar)",
               b"%PDF-": "a PDF", b"\x1f\x8b": "gzip data", b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
               b"7z\xbc\xaf": "a 7z archive", b"\xfd7zXZ": "xz data", b"\xcf\xfa\xed\xfe": "an executable (Mach-O)"}
# Compressed streams by their first bytes (bzip2: "BZh", block size, then a block or end-of-stream magic).
_COMPRESSED = ((b"\x1f\x8b", "gzip", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
               (b"\xfd7zXZ\x00", "xz", lambda f: lzma.LZMAFile(f, "rb")),
               (b"BZh", "bzip2", lambda f: bz2.BZ2File(f, "rb")))
_BZIP2_MAGICS = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")
_DECOMPRESS_ERRORS = (EOFError, lzma.LZMAError, zlib.error)  # besides OSError (gzip.BadGzipFile, bz2)
_CONTROL = bytes(set(range(32)) - {9, 10, 11, 12, 13, 27})  # C0 controls that text does not use
_CONTROL_SHARE = 0.02
_NON_ASCII = bytes(range(128, 256))
_NOT_TEXT_HINT = "skipped; if it is text, pass --encoding (e.g. utf-16-le, latin-1)"


@dataclasses.dataclass(frozen=True)
class Document:
    """One unit to tag: its text (no line terminator), where it came from, or why it could not be read."""

    source: str
    line: int  # 1-based line number of the document's first line; 0: the error is about the whole file
    text: str
    error: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """An input (file or directory) that could not be opened or listed, and why; reported when read."""

    path: str
    reason: str


Input = Union[str, Unreadable]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def expand_inputs(inputs: Sequence[str], glob: str = "*",
                  exclude: Optional[Callable[[str], bool]] = None) -> List[Input]:
    """Files as given, directories walked recursively (files matching `glob`, sorted), "-" for stdin.

    Inside directories a file for which `exclude(path)` is true is left out (logged; e.g. this run's
    output), a subdirectory that cannot be listed becomes an Unreadable entry, and a directory
    without a matching file is logged."""
    out: List[Input] = []
    for item in inputs:
        if item == "-":
            out.append(item)
            continue
        try:
            mode = os.stat(item).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(f"{item}: no such file or directory") from None
        except OSError as exc:
            out.append(Unreadable(item, _reason(exc)))
            continue
        if stat.S_ISDIR(mode):
            found = _walk(item, glob, exclude or (lambda path: False))
            if not found:
                log.warning("%s: no file in it matches %r (--glob)", item, glob)
            out.extend(found)
        else:
            out.append(item)  # a file, or a pipe such as <(command)
    return out


def _walk(top: str, glob: str, excluded: Callable[[str], bool]) -> List[Input]:
    """Regular files under `top` whose path relative to it matches `glob`, and subdirectories that cannot be
    listed, sorted by path. Symbolic links to directories are not followed (no loops)."""
    while glob.startswith("**/"):  # the walk is recursive already; PurePath.match would take ** for one name
        glob = glob[3:]
    found: List[Input] = []
    for root, _, names in os.walk(top, onerror=lambda exc: found.append(Unreadable(exc.filename, _reason(exc)))):
        for name in names:
            path = os.path.join(root, name)
            if not PurePath(os.path.relpath(path, top)).match(glob):
                continue
            try:
                st = os.stat(path)
            except OSError as exc:
                found.append(Unreadable(path, _reason(exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if excluded(path):
                log.info("%s: not read: it is the output file, or a temporary or partial file of it", path)
                continue
            found.append(path)
    return sorted(found, key=lambda f: Path(f.path if isinstance(f, Unreadable) else f))


def check_encoding(name: str) -> str:
    """`name` if it is "auto" or a text codec Python knows, else a ValueError naming it."""
    if name == ENCODINGS_AUTO:
        return name
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r} (--encoding): use auto or a codec name such as utf-8, "
                         f"gb18030, utf-16") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{name!r} is not a text encoding (--encoding)")
    return name


@dataclasses.dataclass(frozen=True)
class _Sniffed:
    """What the first bytes of a stream say: an encoding and its byte-order mark, or why it is not text."""

    encoding: Optional[str] = None  # None: UTF-8 or GB18030, decided from the lines
    bom: int = 0  # bytes of byte-order mark to skip
    not_text: Optional[str] = None


def _sniff(head: bytes) -> _Sniffed:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return _Sniffed(encoding, len(bom))
    wide = _bomless_wide(head)
    if wide:
        return _Sniffed(wide)
    for magic, what in _SIGNATURES.items():
        if head.startswith(magic):
            return _Sniffed(not_text=f"not text ({what}); {_NOT_TEXT_HINT}")
    if b"\0" in head:
        return _Sniffed(not_text=f"not text (NUL bytes at byte {head.index(0)}); {_NOT_TEXT_HINT}")
    controls = len(head) - len(head.translate(None, _CONTROL))
    if controls > _CONTROL_SHARE * len(head):
        return _Sniffed(not_text=f"not text ({controls} control bytes in the first {len(head)}); {_NOT_TEXT_HINT}")
    return _Sniffed()


def _bomless_wide(head: bytes) -> Optional[str]:
    """utf-16-le/be if the bytes look like UTF-16 text without a byte-order mark, else None."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    for encoding, zeros, others in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros and zeros >= 4 * others:
            data = head[:len(head) & ~1]
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                if exc.start < len(data) - 4:  # not just a surrogate pair cut by the window
                    return None
                text = data[:exc.start].decode(encoding)
            controls = sum(1 for c in text if c < " " and c not in "\t\n\v\f\r\x1b")
            return encoding if controls <= _CONTROL_SHARE * len(text) else None
    return None


def sniff_encoding(head: bytes) -> str:
    """The encoding of a stream from its first bytes, by the rules above; a ValueError if they are not text."""
    sniffed = _sniff(head)
    if sniffed.not_text:
        raise ValueError(sniffed.not_text)
    if sniffed.encoding:
        return sniffed.encoding
    return _decide([line for line in head[sniffed.bom:].split(b"\n") if not line.isascii()])


def _misfits(encoding: str, raw: bytes, utf8_evidence: bool) -> Tuple[Optional[str], Optional[str]]:
    """(text, None) if the line decodes in `encoding`, else (None, why not). With `utf8_evidence` (GB18030 chosen
    by detection) a line that is clearly UTF-8 misfits too."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return None, f"cannot decode bytes {raw[exc.start:exc.end]!r} as {encoding} ({exc.reason})"
    if utf8_evidence and not raw.isascii():
        try:
            as_utf8 = raw.decode("utf-8")
        except UnicodeDecodeError:
            return text, None
        if len(as_utf8) - len(raw.translate(None, _NON_ASCII)) >= UTF8_EVIDENCE_CHARS:
            return None, (f"valid UTF-8 in a file read as {encoding}; skipped (pass --encoding to choose one "
                          f"for the whole file)")
    return text, None


def _decide(lines: Sequence[bytes]) -> str:
    """UTF-8 or GB18030: the one fewer of these (non-ASCII) lines misfit; UTF-8 on a tie."""
    utf8 = sum(_misfits("utf-8", raw, False)[1] is not None for raw in lines)
    gb = sum(_misfits("gb18030", raw, True)[1] is not None for raw in lines) if utf8 else 1
    return "utf-8" if utf8 <= gb else "gb18030"


class _LineDecoder:
    """Decodes one file's lines in one encoding and counts those that do not fit it."""

    def __init__(self, encoding: str, utf8_evidence: bool):
        self.encoding, self.utf8_evidence = encoding, utf8_evidence
        self.non_ascii = self.misfits = self.in_a_row = 0
        self.first_misfit = 0

    def decode(self, raw: bytes, number: int) -> Tuple[Optional[str], Optional[str]]:
        ascii_only = raw.isascii()
        self.non_ascii += not ascii_only
        text, error = _misfits(self.encoding, raw, self.utf8_evidence)
        if error:
            self.misfits += 1
            self.in_a_row += 1
            self.first_misfit = self.first_misfit or number
        elif not ascii_only:
            self.in_a_row = 0
        return text, error

    def mixed(self) -> bool:
        """More than MISFIT_LINES misfits, in a row (the encoding changed) or over MISFIT_SHARE of the lines."""
        return self.misfits > MISFIT_LINES and (self.in_a_row > MISFIT_LINES
                                                or self.misfits > MISFIT_SHARE * self.non_ascii)

    def summary(self) -> str:
        return (f"not in one encoding: {self.misfits} of {self.non_ascii} non-ASCII lines do not fit "
                f"{self.encoding} (the first is line {self.first_misfit})")


def _strip_terminator(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


class _Replay(io.RawIOBase):
    """A byte stream that first gives back the bytes already read (the decision window), then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = getattr(self._rest, "read1", self._rest.read)(len(buf))
        buf[:len(data)] = data
        return len(data)


def _read_window(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: all of them unless the stream ends first (a pipe is waited for)."""
    parts, got = [], 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _byte_documents(lines: Iterator[bytes], source: str, encoding: Optional[str]) -> Iterator[Document]:
    """Byte-oriented encodings (UTF-8, GB18030, ...): lines split on b"\\n", each decoded on its own.

    With `encoding` None the encoding is decided (UTF-8 or GB18030) at the first non-ASCII line."""
    decoder = _LineDecoder(encoding, False) if encoding else None
    number = 0
    for raw in lines:
        number += 1
        if decoder is None and raw.isascii():
            yield Document(source, number, _first(number, _strip_terminator(raw.decode("ascii"))))
            continue
        if decoder is None:
            window, size = [raw], len(raw)
            while size < WINDOW_BYTES:
                more = next(lines, None)
                if more is None:
                    break
                window.append(more)
                size += len(more)
            chosen = _decide([w for w in window if not w.isascii()])
            decoder = _LineDecoder(chosen, utf8_evidence=chosen != "utf-8")
            decoded = [decoder.decode(w, number + i) for i, w in enumerate(window)]
            if decoder.mixed():
                where = "" if number == 1 else f" from line {number} on (the ASCII lines before it were read)"
                yield Document(source, 0, "", f"{decoder.summary()}; skipped{where} (pass --encoding to choose one)")
                return
            for i, (text, error) in enumerate(decoded):
                yield Document(source, number + i, _first(number + i, _strip_terminator(text or "")), error)
            number += len(window) - 1
            continue
        text, error = decoder.decode(raw, number)
        if decoder.mixed():
            yield Document(source, number, "", f"{decoder.summary()}; the rest of the file is skipped "
                                               f"(pass --encoding to choose one)")
            return
        yield Document(source, number, _first(number, _strip_terminator(text or "")), error)


def _first(number: int, text: str) -> str:
    """A byte-order mark is never part of the text (one decoded as U+FEFF at the start of line 1)."""
    return text[1:] if number == 1 and text.startswith("\ufeff") else text


def _text_documents(stream: BinaryIO, encoding: str, source: str) -> Iterator[Document]:
    """Wide encodings (UTF-16, UTF-32): an incremental text decoder, lines split on \\n only."""
    reader = io.TextIOWrapper(stream, encoding=encoding, newline="\n")
    number = 0
    try:
        for number, text in enumerate(reader, 1):
            yield Document(source, number, _first(number, _strip_terminator(text)))
    except UnicodeDecodeError as exc:
        yield Document(source, number + 1, "", f"cannot decode as {encoding} ({exc.reason}); the rest of the "
                                                f"file is skipped")


def _whole_document(data: bytes, source: str, encoding: Optional[str]) -> Document:
    """The whole file as one document, in `encoding` or the one decided from all its lines."""
    if encoding is None:
        lines = data.split(b"\n")
        encoding = _decide([line for line in lines if not line.isascii()])
        for number, raw in enumerate(lines, 1):
            _, error = _misfits(encoding, raw, encoding != "utf-8")
            if error:
                return Document(source, number, "", error)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Document(source, line, "", f"cannot decode bytes {data[exc.start:exc.end]!r} as {encoding} "
                                          f"({exc.reason})")
    return Document(source, 1, _first(1, text))


def _is_wide(encoding: str) -> bool:
    """True for encodings whose "\\n" is not the single byte 0x0A (UTF-16, UTF-32): decoded as a text stream."""
    try:
        return "\n".encode(encoding) != b"\n"
    except (UnicodeError, LookupError):
        return False


def _stream_documents(stream: BinaryIO, source: str, encoding: str, whole_file: bool) -> Iterator[Document]:
    if encoding == ENCODINGS_AUTO:
        head = _read_window(stream, WINDOW_BYTES)
        sniffed = _sniff(head)
        if sniffed.not_text:
            yield Document(source, 0, "", sniffed.not_text)
            return
        chosen: Optional[str] = sniffed.encoding
        body: BinaryIO = io.BufferedReader(_Replay(head[sniffed.bom:], stream))
    else:
        chosen, body = encoding, io.BufferedReader(_Replay(b"", stream))  # closing it never closes stdin
    if whole_file:
        yield _whole_document(body.read(), source, chosen)
    elif chosen is not None and _is_wide(chosen):
        yield from _text_documents(body, chosen, source)
    else:
        yield from _byte_documents(iter(body), source, chosen)


def _compression(head: bytes) -> Optional[Tuple[str, Callable[[BinaryIO], BinaryIO]]]:
    """(name, opener) of the compressed format that `head` (the first 10 bytes) starts, or None."""
    for magic, name, opener in _COMPRESSED:
        if head.startswith(magic) and (name != "bzip2" or (head[3:4] in b"123456789" and len(head) >= 4
                                                            and head[4:10] in _BZIP2_MAGICS)):
            return name, opener
    return None


def _maybe_decompressed(stream: BinaryIO) -> Tuple[BinaryIO, Optional[str]]:
    """`stream`, or its decompressed bytes if it starts as a gzip, xz or bzip2 stream; and that format's name."""
    head = _read_window(stream, 10)
    body = io.BufferedReader(_Replay(head, stream))
    found = _compression(head)
    if found is None:
        return body, None
    name, opener = found
    return opener(body), name


def read_documents(inputs: Iterable[Input], encoding: str = ENCODINGS_AUTO, whole_file: bool = False,
                   stdin: Optional[BinaryIO] = None, decompress: bool = False) -> Iterator[Document]:
    """Documents of every input in order: one per line, or one per file with `whole_file`; with `decompress`,
    gzip/xz/bzip2 files are read decompressed.

    An input that cannot be opened or read gives an error Document ("cannot read (reason)") and the
    next input is read."""
    for item in inputs:
        if isinstance(item, Unreadable):
            yield Document(item.path, 0, "", f"cannot read ({item.reason})")
            continue
        source = "<stdin>" if item == "-" else item
        try:
            stream = (stdin or sys.stdin.buffer) if item == "-" else open(item, "rb")
        except OSError as exc:
            yield Document(source, 0, "", f"cannot read ({_reason(exc)})")
            continue
        last = 0
        compressed = None
        try:
            body = stream
            if decompress:
                body, compressed = _maybe_decompressed(stream)
            for doc in _stream_documents(body, source, encoding, whole_file):
                last = max(last, doc.line)
                yield doc
        except (OSError,) + _DECOMPRESS_ERRORS as exc:
            why = _reason(exc) if isinstance(exc, OSError) else str(exc) or type(exc).__name__
            if compressed:
                why = f"corrupt or truncated {compressed} data: {why}"
            yield Document(source, last + 1 if last else 0, "",
                           f"cannot read ({why})" + ("; the rest of the file is skipped" if last else ""))
        finally:
            if item != "-":
                stream.close()
