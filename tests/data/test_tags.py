"""Tags: parsing, scheme detection, entity extraction (BIO/BIOES, orphan I-), building and repair."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from albert_ner.data.tags import Entity, detect_scheme, entities_from_tags, parse_tag, repair_tags, tags_from_entities


@pytest.mark.parametrize("tag, expected", [
    ("O", ("O", None)), ("B-PER", ("B", "PER")), ("I-LOC", ("I", "LOC")),
    ("E-ORG", ("E", "ORG")), ("S-X-Y", ("S", "X-Y")), ("B-人名", ("B", "人名")),
])
def test_parse_tag(tag, expected):
    assert parse_tag(tag) == expected


@pytest.mark.parametrize("bad", ["", "o", "B", "B-", "X-PER", "B-P ER", "B_PER", "O-PER", " O", "B-PER\n"])
def test_parse_tag_rejects_bad_tags(bad):
    with pytest.raises(ValueError, match="invalid tag"):
        parse_tag(bad)


def test_detect_scheme():
    assert detect_scheme(["O", "B-PER", "I-PER"]) == "BIO"
    assert detect_scheme([]) == "BIO"
    assert detect_scheme(iter(["O", "B-PER", "E-PER"])) == "BIOES"
    assert detect_scheme(["S-LOC"]) == "BIOES"


def test_entities_bio():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-ORG", "I-ORG", "O", "B-PER"]
    assert entities_from_tags(tags) == [
        Entity("PER", 0, 2), Entity("LOC", 3, 4), Entity("LOC", 4, 6), Entity("ORG", 6, 8), Entity("PER", 9, 10)]


def test_entities_orphan_i_starts_an_entity():
    assert entities_from_tags(["I-PER", "I-PER", "O", "I-LOC"]) == [Entity("PER", 0, 2), Entity("LOC", 3, 4)]
    assert entities_from_tags(["B-PER", "I-LOC"]) == [Entity("PER", 0, 1), Entity("LOC", 1, 2)]
    assert entities_from_tags([]) == []
    assert entities_from_tags(["O", "O"]) == []


def test_entities_bioes():
    tags = ["S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "B-ORG", "E-ORG", "S-ORG", "E-ORG", "I-PER", "E-PER"]
    assert entities_from_tags(tags) == [
        Entity("PER", 0, 1), Entity("LOC", 1, 4), Entity("ORG", 5, 7), Entity("ORG", 7, 8),
        Entity("ORG", 8, 9), Entity("PER", 9, 11)]
    # an I- right after an E- of the same type begins a new entity (the E- closed the previous one)
    assert entities_from_tags(["B-LOC", "E-LOC", "I-LOC", "E-LOC"]) == [Entity("LOC", 0, 2), Entity("LOC", 2, 4)]


def test_entities_reject_bad_tags():
    with pytest.raises(ValueError):
        entities_from_tags(["O", "X-PER"])


def test_tags_from_entities():
    ents = [Entity("PER", 0, 2), Entity("LOC", 3, 4), Entity("ORG", 4, 7)]
    assert tags_from_entities(7, ents) == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG", "I-ORG"]
    assert tags_from_entities(7, ents, "BIOES") == ["B-PER", "E-PER", "O", "S-LOC", "B-ORG", "I-ORG", "E-ORG"]
    assert tags_from_entities(0, []) == []


@pytest.mark.parametrize("length, ents, scheme", [
    (3, [Entity("PER", 2, 4)], "BIO"),
    (3, [Entity("PER", 1, 1)], "BIO"),
    (5, [Entity("PER", 0, 3), Entity("LOC", 2, 4)], "BIO"),
    (5, [Entity("P ER", 0, 3)], "BIO"),
    (5, [], "IOB2"),
])
def test_tags_from_entities_rejects(length, ents, scheme):
    with pytest.raises(ValueError):
        tags_from_entities(length, ents, scheme)


@st.composite
def entity_layouts(draw):
    """A length and non-overlapping entities inside it."""
    length = draw(st.integers(0, 40))
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=12)))
    ents = []
    for a, b in zip(cuts[::2], cuts[1::2]):
        if a < b and (not ents or a >= ents[-1].end):
            ents.append(Entity(draw(st.sampled_from(["PER", "LOC", "ORG"])), a, b))
    return length, ents


@given(entity_layouts(), st.sampled_from(["BIO", "BIOES"]))
def test_round_trip(layout, scheme):
    length, ents = layout
    tags = tags_from_entities(length, ents, scheme)
    assert len(tags) == length
    assert repair_tags(tags) == (tags, [])
    assert entities_from_tags(tags) == ents  # adjacent same-type entities stay apart: each starts with B-/S-
    assert detect_scheme(tags) == ("BIOES" if scheme == "BIOES" and ents else "BIO")


def test_repair_bio():
    tags = ["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "I-ORG", "O", "I-LOC"]
    fixed, where = repair_tags(tags)
    assert fixed == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG", "O", "B-LOC"]
    assert where == [0, 4, 7]
    assert tags[0] == "I-PER"  # the input is not modified
    assert entities_from_tags(fixed) == entities_from_tags(tags)


def test_repair_bioes():
    tags = ["E-PER", "S-LOC", "I-LOC", "E-LOC", "B-ORG", "E-ORG", "E-ORG", "I-PER"]
    fixed, where = repair_tags(tags)
    assert fixed == ["S-PER", "S-LOC", "B-LOC", "E-LOC", "B-ORG", "E-ORG", "S-ORG", "B-PER"]
    assert where == [0, 2, 6, 7]
    assert entities_from_tags(fixed) == entities_from_tags(tags)


@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC"]), max_size=30))
def test_repair_keeps_entities_and_is_idempotent(tags):
    fixed, where = repair_tags(tags)
    assert entities_from_tags(fixed) == entities_from_tags(tags)
    assert repair_tags(fixed) == (fixed, [])
    assert all(tags[i] != fixed[i] for i in where)
    assert all(tags[i] == fixed[i] for i in range(len(tags)) if i not in where)
