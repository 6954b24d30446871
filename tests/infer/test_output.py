"""`tag -o`: the output file replaces the target only when complete; an interrupted one keeps whole records only."""
import os
import stat

import pytest

from albert_ner.infer.output import OutputFile, artifacts, check_output
from albert_ner.infer.textfiles import expand_inputs


def test_the_target_changes_only_at_commit_and_keeps_its_permissions(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    out = OutputFile(target)
    out.write("一\n")
    out.write("二\n")
    assert target.read_text(encoding="utf-8") == "old\n"  # nothing under the final name yet
    out.commit()
    assert target.read_text(encoding="utf-8") == "一\n二\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


class CutWrites:
    """A file whose next write stores half its bytes and is then interrupted (Ctrl-C inside a write)."""

    def __init__(self, file):
        self.file = file
        self.closed = False

    def write(self, data):
        self.file.write(data[: len(data) // 2])
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_an_interrupted_write_is_cut_off_and_the_whole_records_kept_aside(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    out = OutputFile(target)
    out.write('{"line": 1}\n')
    out.write('{"line": 2}\n')
    out._file = CutWrites(out._file)
    with pytest.raises(KeyboardInterrupt):
        out.write('{"line": 3, "text": "北京欢迎你"}\n')
    out._file = out._file.file
    partial = out.keep_partial()
    assert partial == tmp_path / "out.jsonl.partial"
    assert partial.read_text(encoding="utf-8") == '{"line": 1}\n{"line": 2}\n'
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.partial"]


def test_nothing_written_leaves_nothing_behind(tmp_path):
    out = OutputFile(tmp_path / "out.jsonl")
    assert out.keep_partial() is None
    assert list(tmp_path.iterdir()) == []


def test_the_output_is_checked_against_the_inputs(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("一\n", encoding="utf-8")
    os.symlink(src, tmp_path / "link.txt")
    with pytest.raises(ValueError, match="is also an input"):
        check_output(str(tmp_path / "link.txt"), [str(src)])
    with pytest.raises(ValueError, match="is a directory"):
        check_output(str(tmp_path), [str(src)])
    assert check_output(str(tmp_path / "new.jsonl"), [str(src), str(tmp_path)]) == tmp_path / "new.jsonl"


def test_the_output_and_its_partial_and_temporary_files_are_never_read_from_a_directory(tmp_path):
    d = tmp_path / "d[1]"  # fnmatch-special characters in the path are plain characters here
    d.mkdir()
    for name in ("in.txt", "out.jsonl", "out.jsonl.partial", ".out.jsonl.123.tmp", "out.jsonl.bak"):
        (d / name).write_text("一\n", encoding="utf-8")
    os.link(d / "out.jsonl", d / "alias.jsonl")
    os.symlink(d / "out.jsonl.partial", d / "link.txt")
    assert expand_inputs([str(d)], exclude=artifacts(d / "out.jsonl")) == [str(d / "in.txt"), str(d / "out.jsonl.bak")]
    assert len(expand_inputs([str(d)])) == 7
