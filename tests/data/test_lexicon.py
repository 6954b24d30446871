"""jieba word-boundary and POS features stay aligned one id per character."""
import numpy as np
from hypothesis import given, settings, strategies as st

from albert_ner.data.lexicon import (B, E, M, NUM_POS_IDS, POS_TAGS, POS_UNKNOWN, S, word_boundary_and_pos_ids,
                                     word_boundary_ids)

TEXTS = st.text(alphabet=st.sampled_from(list("北京天安门张三 \t，。ab1２😀é\u0301")), max_size=40)


def test_known_segmentation():
    ids = word_boundary_ids("我来到北京清华大学")
    # 我 / 来到 / 北京 / 清华大学
    np.testing.assert_array_equal(ids, [S, B, E, B, E, B, M, M, E])


def test_pos_ids_mark_place_and_organisation_words():
    boundaries, pos = word_boundary_and_pos_ids("我来到北京清华大学")
    np.testing.assert_array_equal(boundaries, [S, B, E, B, E, B, M, M, E])
    tags = [POS_TAGS[i - 2] for i in pos]
    assert tags[3:5] == ["ns", "ns"]  # 北京: a place name
    assert tags[5:] == ["nt"] * 4  # 清华大学: an organisation
    assert tags[0] == "r"  # 我: a pronoun


def test_pos_table_is_stable():
    # Saved models store POS ids: the table may grow at the end but never reorder.
    assert POS_TAGS[:4] == ("a", "ad", "ag", "an") and POS_TAGS.index("nr") == 28 and POS_TAGS.index("nt") == 32
    assert len(set(POS_TAGS)) == len(POS_TAGS) and NUM_POS_IDS == len(POS_TAGS) + 2


@settings(max_examples=60, deadline=None)
@given(TEXTS)
def test_one_id_per_character_for_any_text(text):
    ids = word_boundary_ids(text)
    assert len(ids) == len(text)
    assert set(ids.tolist()) <= {B, M, E, S}


@settings(max_examples=60, deadline=None)
@given(TEXTS)
def test_pos_features_have_one_id_per_character_for_any_text(text):
    boundaries, pos = word_boundary_and_pos_ids(text)
    assert len(boundaries) == len(pos) == len(text)
    assert set(boundaries.tolist()) <= {B, M, E, S}
    assert ((pos >= POS_UNKNOWN) & (pos < NUM_POS_IDS)).all()
    # every character of one word carries the same POS id
    starts = np.flatnonzero((boundaries == B) | (boundaries == S))
    for a, b in zip(starts, list(starts[1:]) + [len(text)]):
        assert len(set(pos[a:b].tolist())) == 1
