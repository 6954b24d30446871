"""Character lookup orders: "fold" keeps the ids of every model trained before the setting existed;
"exact_first" gives the ids a pretrained encoder's own WordPiece tokenizer gives; the order is saved with
the model and read back by every path that featurizes, the TensorFlow-free serving handler included."""
import ast
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from albert_ner.config import HeadConfig, ModelConfig, TrainConfig, preset_encoder, save_json
from albert_ner.data.corpus import read_corpus
from albert_ner.data.features import Featurizer
from albert_ner.data.vocab import Vocab
from albert_ner.model import modeldir

REPO = Path(__file__).resolve().parents[2]
# The last commit before lookup orders existed: its vocab.py is the reference for "fold".
BEFORE = "21b0c07599870b997e569abd474a625c108a66dd"
# sha256 of "<hex code point> <id>\n" for every distinct MSRA test character (sorted), mapped onto
# ../shared/pretrained/vocab.txt by BEFORE's vocab.py: lets "fold" be checked without git history.
BEFORE_MSRA_TEST_DIGEST = "aa8141b2e0643d46023e1c08ee9af64eb0ea68134c09ba44bbf20a66ac08ac4d"
# Text on which the two orders differ (full-width punctuation and digits, case, curly quotes).
MIXED_TEXT = "张三，在ＡＢＣ公司（１２３）：“Ｏｋ”—É\u3000x"
LABELS = ("O", "B-PER", "I-PER")


@pytest.fixture(scope="module")
def msra_test_chars(msra_dir):
    sentences, _ = read_corpus(msra_dir / "test.txt")
    return sorted({c for s in sentences for c in s.chars})


@pytest.fixture(scope="module")
def vocab_before(tmp_path_factory):
    """BEFORE's vocab module, loaded from git history into a module of its own."""
    proc = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:albert_ner/data/vocab.py"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"commit {BEFORE[:7]} not in this checkout's history: {proc.stderr.strip()[:200]}")
    path = tmp_path_factory.mktemp("before") / "vocab_before_char_lookup.py"
    path.write_text(proc.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("vocab_before_char_lookup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "char_lookup" not in proc.stdout  # really the code before lookup orders
    return module


def _digest(vocab, chars):
    text = "".join(f"{ord(c):x} {vocab.char_to_id(c)}\n" for c in chars)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- "fold" is today's mapping, bit for bit ------------------------------------------------------
def test_fold_reproduces_the_old_ids_on_msra_test(vocab_before, vocab_path, msra_dir):
    sentences, st = read_corpus(msra_dir / "test.txt")
    old = vocab_before.Vocab.from_file(vocab_path)
    old_ids = [old.encode(s.chars).tolist() for s in sentences]
    for new in (Vocab.from_file(vocab_path), Vocab.from_file(vocab_path, char_lookup="fold")):
        assert [new.encode(s.chars).tolist() for s in sentences] == old_ids
    assert sum(len(s.chars) for s in sentences) == st.chars == 172601


@pytest.mark.parametrize("vocab_file", ["vocab.txt", "ernie-1.0/vocab.txt"])
def test_fold_reproduces_the_old_ids_on_every_code_point(vocab_before, shared_dir, vocab_file):
    """Planes 0-2 (surrogates excepted) against both a WordPiece and an ERNIE vocabulary."""
    path = shared_dir / "pretrained" / vocab_file
    old, new = vocab_before.Vocab.from_file(path), Vocab.from_file(path)
    chars = [chr(i) for i in range(0x30000) if not 0xD800 <= i < 0xE000]
    differ = [c for c in chars if old.char_to_id(c) != new.char_to_id(c)]
    assert differ == []


def test_fold_matches_the_recorded_ids_on_msra_test(vocab_path, msra_test_chars):
    """The same check without git: the digest of BEFORE's ids for every MSRA test character."""
    assert len(msra_test_chars) == 3103
    assert _digest(Vocab.from_file(vocab_path), msra_test_chars) == BEFORE_MSRA_TEST_DIGEST
    assert _digest(Vocab.from_file(vocab_path, char_lookup="exact_first"), msra_test_chars) != BEFORE_MSRA_TEST_DIGEST


# ---- "exact_first" agrees with the pretrained tokenizer ------------------------------------------
@pytest.mark.parametrize("lower", [False, True])
def test_exact_first_agrees_with_a_wordpiece_tokenizer(vocab_path, msra_test_chars, lower):
    """Each character tokenized alone; compared where the reference yields one token that is not [UNK]
    (it drops control characters and emits [UNK] where we fall back on purpose)."""
    transformers = pytest.importorskip("transformers")
    reference = transformers.BertTokenizer(str(vocab_path), do_lower_case=lower)
    exact = Vocab.from_file(vocab_path, char_lookup="exact_first")
    fold = Vocab.from_file(vocab_path)
    blocks = [range(0x20, 0x250), range(0x2000, 0x2070), range(0x3000, 0x3040), range(0xFF00, 0xFFF0)]
    singles = [t for t in exact.tokens if len(t) == 1]
    extra = sorted({chr(i) for block in blocks for i in block} | set(singles))
    results = {}
    for name, chars in (("msra", msra_test_chars), ("extra", extra)):
        expected = {}
        for ch in chars:
            tokens = reference.tokenize(ch)
            if len(tokens) == 1 and tokens[0] != reference.unk_token:
                expected[ch] = reference.convert_tokens_to_ids(tokens[0])
        results[name] = expected
        assert [c for c, i in expected.items() if exact.char_to_id(c) != i] == [], name
    msra = results["msra"]
    assert len(msra) >= 3000 and len(results["extra"]) >= 7000  # measured: 3061/3070 and 7999/9573
    # what the fold order gets wrong here: full-width punctuation and digits (and case with lower=False)
    folded_wrong = [c for c, i in msra.items() if fold.char_to_id(c) != i]
    assert len(folded_wrong) >= 30 and "，" in folded_wrong and "１" in folded_wrong


# ---- persisted with the model --------------------------------------------------------------------
def _model_folder(folder: Path, vocab_path: Path, char_lookup, manifest: bool = True) -> Path:
    """A model folder's config and featurizer files (no weights): the head states `char_lookup`, or,
    with None, the config is written as versions before the setting wrote it."""
    folder.mkdir(parents=True)
    head = HeadConfig(lstm_units=8) if char_lookup is None else HeadConfig(lstm_units=8, char_lookup=char_lookup)
    config = ModelConfig(preset_encoder("tiny", 21128), head, LABELS, 64)
    save_json(config, folder / "model_config.json")
    if char_lookup is None:
        raw = json.loads((folder / "model_config.json").read_text(encoding="utf-8"))
        del raw["head"]["char_lookup"]
        (folder / "model_config.json").write_text(json.dumps(raw), encoding="utf-8")
    featurizer = Featurizer(Vocab.from_file(vocab_path, char_lookup=head.char_lookup))
    featurizer.save(folder, vocab_path)
    if manifest:
        modeldir.write_manifest(folder, {"vocab_tokens": len(featurizer.vocab)})
    return folder


@pytest.mark.parametrize("mode", ["fold", "exact_first"])
def test_char_lookup_round_trips_through_a_model_folder(tmp_path, vocab_path, mode):
    folder = _model_folder(tmp_path / "model", vocab_path, mode)
    assert json.loads((folder / "model_config.json").read_text(encoding="utf-8"))["head"]["char_lookup"] == mode
    files = modeldir.open_files(folder)
    assert files.config.head.char_lookup == files.featurizer.char_lookup == mode
    expected = Vocab.from_file(vocab_path, char_lookup=mode).encode(MIXED_TEXT)
    assert files.featurizer.vocab.encode(MIXED_TEXT).tolist() == expected.tolist()


def test_a_model_folder_without_char_lookup_reads_as_fold(tmp_path, vocab_path, vocab_before):
    folder = _model_folder(tmp_path / "old", vocab_path, None, manifest=False)
    assert "char_lookup" not in json.loads((folder / "model_config.json").read_text(encoding="utf-8"))["head"]
    featurizer = modeldir.open_files(folder).featurizer
    assert featurizer.char_lookup == "fold"
    old = vocab_before.Vocab.from_file(vocab_path)
    assert featurizer.vocab.encode(MIXED_TEXT).tolist() == old.encode(MIXED_TEXT).tolist()


def test_a_bad_char_lookup_in_a_model_config_names_file_and_field(tmp_path, vocab_path):
    folder = _model_folder(tmp_path / "bad", vocab_path, "exact_first", manifest=False)
    raw = json.loads((folder / "model_config.json").read_text(encoding="utf-8"))
    raw["head"]["char_lookup"] = "EXACT"
    (folder / "model_config.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=r"head: invalid head config: char_lookup must be one of fold, "
                                         r"exact_first, got 'EXACT'") as info:
        modeldir.open_files(folder)
    assert str(info.value).startswith(str(folder / "model_config.json"))


def _handler_modules():
    """export.HANDLER_MODULES, read from its source (importing export would import TensorFlow)."""
    source = (REPO / "albert_ner" / "infer" / "export.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "HANDLER_MODULES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("export.py defines no HANDLER_MODULES")


def test_the_serving_handler_code_maps_characters_as_training_did(tmp_path, vocab_path):
    """The modules an export ships, alone on the path of a Python without site-packages (no numpy, no
    TensorFlow), featurize a request with the exported model's lookup: the token ids reaching the model are
    those of the training featurizer."""
    from albert_ner.infer.serving_tables import write_tables

    folder = _model_folder(tmp_path / "code" / "model", vocab_path, "exact_first", manifest=False)
    files = modeldir.open_files(folder)
    write_tables(folder, files.config, files.featurizer)  # as export writes them
    modeldir.write_manifest(folder, {"vocab_tokens": len(files.featurizer.vocab)})
    lib = tmp_path / "code" / "lib"
    for rel in _handler_modules():
        (lib / "albert_ner" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "albert_ner" / rel, lib / "albert_ner" / rel)
    (lib / "albert_ner" / "__init__.py").write_text("")
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(lib)!r})\n"
        "import albert_ner\n"
        f"assert albert_ner.__file__.startswith({str(lib)!r}), albert_ner.__file__\n"
        "from albert_ner.infer.serving import ServingPipeline\n"
        "seen = []\n"
        "def runner(inputs):\n"
        "    seen.extend(inputs['token_ids'])\n"
        "    chars = [len(r) - 2 for r in inputs['token_ids']]\n"
        "    return {'tags': [[0] * n for n in chars], 'confidence': [[1.0] * n for n in chars]}\n"
        f"pipeline = ServingPipeline.from_dir({str(folder)!r}, runner)\n"
        f"pipeline.tag([{MIXED_TEXT!r}])\n"
        "print(json.dumps({'rows': seen}))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    exact = Vocab.from_file(vocab_path, char_lookup="exact_first")
    expected = exact.encode(MIXED_TEXT).tolist()
    assert expected != Vocab.from_file(vocab_path).encode(MIXED_TEXT).tolist()  # the check can tell them apart
    (row,) = out["rows"]  # one text, one window, one row
    n = len(MIXED_TEXT)
    assert row[0] == exact.cls_id and row[1:n + 1] == expected and row[n + 1] == exact.sep_id
    assert all(i == exact.pad_id for i in row[n + 2:])


# ---- the setting of a training run ---------------------------------------------------------------
def test_train_config_chooses_the_lookup_from_init():
    base = dict(train_file="t.txt", output_dir="out", vocab_file="v.txt")
    assert TrainConfig(**base).char_lookup_mode() == "fold"  # from scratch: today's results reproduce
    assert TrainConfig(**base, init="ckpt").char_lookup_mode() == "exact_first"
    assert TrainConfig(**base, init="ckpt", char_lookup="fold").char_lookup_mode() == "fold"
    assert TrainConfig(**base, char_lookup="exact_first").char_lookup_mode() == "exact_first"
    with pytest.raises(ValueError, match=r"char_lookup must be one of fold, exact_first, got 'exact'"):
        TrainConfig(**base, char_lookup="exact")
    with pytest.raises(ValueError, match=r"invalid head config: char_lookup must be one of"):
        HeadConfig(char_lookup="none")


def test_char_lookup_flag(msra_dir, vocab_path):
    from albert_ner.cli import build_parser, train_config_from_args

    common = ["train", "--data-dir", str(msra_dir), "--vocab-file", str(vocab_path)]
    assert train_config_from_args(build_parser().parse_args(common)).char_lookup is None
    cfg = train_config_from_args(build_parser().parse_args(common + ["--char-lookup", "exact_first"]))
    assert (cfg.char_lookup, cfg.char_lookup_mode()) == ("exact_first", "exact_first")
    with pytest.raises(SystemExit, match=r"char_lookup must be one of fold, exact_first, got 'exact'"):
        train_config_from_args(build_parser().parse_args(common + ["--char-lookup", "exact"]))
