"""Entity-level report: seqeval micro and per-type scores, metric lines a regex can read."""
import re

import pytest

from albert_ner.train.report import entity_report, format_table, metric_lines


def test_bio_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O", "O"]]
    r = entity_report(gold, pred)
    # gold: PER, LOC, ORG; predicted: PER (right), ORG[0:1] (wrong span)
    assert r["precision"] == pytest.approx(1 / 2)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(0.4)
    assert r["per_type"]["PER"]["f1"] == 1.0 and r["per_type"]["LOC"]["recall"] == 0.0
    assert (r["sentences"], r["chars"], r["support"]) == (2, 7, 3)


def test_bioes_is_scored_strictly():
    gold = [["S-PER", "O", "B-LOC", "E-LOC"]]
    pred = [["S-PER", "O", "B-LOC", "I-LOC"]]  # LOC never closed: not an entity under IOBES
    r = entity_report(gold, pred)
    assert r["per_type"]["PER"]["f1"] == 1.0
    assert r["per_type"]["LOC"]["recall"] == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        entity_report([["O", "O"]], [["O"]])


def test_metric_lines_are_regex_friendly():
    r = entity_report([["B-PER", "I-PER"]], [["B-PER", "I-PER"]])
    lines = metric_lines("eval", r)
    assert "eval_f1 = 1.0000" in lines and "eval_PER_f1 = 1.0000" in lines
    assert all(re.fullmatch(r"eval_(\w+_)?(precision|recall|f1) = \d\.\d{4}", line) for line in lines)
    assert "micro" in format_table(r)


def test_predictions_in_the_other_scheme_are_compared_as_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]]
    bioes = [["B-PER", "E-PER", "O", "S-LOC"], ["O", "B-ORG", "I-ORG", "E-ORG"]]
    report = entity_report(gold, bioes)
    assert report["f1"] == 1.0 and report["support"] == 3
    wrong = [["B-PER", "E-PER", "O", "O"], ["O", "S-ORG", "O", "O"]]
    assert entity_report(gold, wrong)["recall"] == pytest.approx(1 / 3)
