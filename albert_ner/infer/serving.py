"""The serving contract of an exported model: raw texts in, tags and entities out, TF-free.

An export holds a SavedModel whose `serving_default` signature maps window batches
(token_ids [B,T], lengths [B], word_boundaries/pos_ids/bigram_ids [B,T-2]; unused features are
zeros) to {"tags": int32 [B,T-2], "confidence": float32 [B,T-2]}, plus the featurizer files. This
module does the rest around it exactly as the in-process tagger does (featurize, window, merge,
entities), calling the model through any runner: a loaded SavedModel, or TensorFlow Serving's
REST API (`rest_runner`), which is what the SageMaker handler uses.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from albert_ner.config import ModelConfig
from albert_ner.data.corpus import Sentence
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import CHAR_FEATURES
from albert_ner.infer.tagging import entity_records
from albert_ner.infer.windowed import Runner, WindowedTagger
from albert_ner.model.modeldir import open_files

SIGNATURE = "serving_default"  # inputs: windowed.INPUT_KEYS, every one present (complete_inputs)


def complete_inputs(inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Every signature input, int32; features the model does not use are zeros of the char shape."""
    token_ids = np.asarray(inputs["token_ids"], np.int32)
    chars = (token_ids.shape[0], max(token_ids.shape[1] - 2, 0))
    out = {"token_ids": token_ids, "lengths": np.asarray(inputs["lengths"], np.int32)}
    for name in CHAR_FEATURES:
        out[name] = np.asarray(inputs[name], np.int32) if name in inputs else np.zeros(chars, np.int32)
    return out


def rest_runner(url: str, timeout: float = 60.0) -> Runner:
    """A runner that posts window batches to a TensorFlow Serving REST `:predict` URL (columnar format)."""
    def run(inputs: Dict[str, np.ndarray], confidence: bool) -> Dict[str, np.ndarray]:
        body = {"signature_name": SIGNATURE,
                "inputs": {k: v.tolist() for k, v in complete_inputs(inputs).items()}}
        request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            outputs = json.loads(resp.read().decode("utf-8"))["outputs"]
        return {"tags": np.asarray(outputs["tags"], np.int32),
                "confidence": np.asarray(outputs["confidence"], np.float32)}
    return run


class ServingPipeline:
    """Texts -> [{"text", "entities"}] around a model runner, with the export's featurizer."""

    def __init__(self, config: ModelConfig, featurizer: Featurizer, runner: Runner, batch_size: int = 64):
        self.tagger = WindowedTagger(runner, featurizer, config.labels, config.max_seq_len, batch_size)

    @classmethod
    def from_dir(cls, files_dir: str | Path, runner: Runner, batch_size: int = 64) -> "ServingPipeline":
        """Read model_config.json, the vocab and the feature files written by `albert-ner export`, checked as
        every command checks a model (fields, labels, vocabulary size, the manifest's checksums)."""
        files = open_files(files_dir)
        return cls(files.config, files.featurizer, runner, batch_size)

    def tag(self, texts: Sequence[str]) -> List[Dict]:
        """Entities (type, start, end, text, score) of every text, offsets into that text."""
        sentences = [Sentence(tuple(t), None, "<request>", i + 1) for i, t in enumerate(texts)]
        results = []
        for text, (tags, confidence) in zip(texts, self.tagger.predict_with_confidence(sentences)):
            results.append({"text": text, "tags": tags, "entities": entity_records(text, tags, confidence)})
        return results


def parse_request(body: bytes, content_type: Optional[str]) -> List[str]:
    """Texts from a request: JSON {"instances": [...]}, {"texts": [...]}, a JSON list, or text/plain lines."""
    text = body.decode("utf-8")
    if (content_type or "").split(";")[0].strip() in ("text/plain", "text/csv"):
        return text.splitlines()
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("instances", data.get("texts"))
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise ValueError('expected {"instances": ["text", ...]}, {"texts": [...]}, a JSON list of strings, '
                         "or text/plain lines")
    return data
