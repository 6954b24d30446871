"""jieba word-boundary features stay aligned one id per character."""
import numpy as np
from hypothesis import given, settings, strategies as st

from albert_ner.data.lexicon import B, E, M, S, word_boundary_ids


def test_known_segmentation():
    ids = word_boundary_ids("我来到北京清华大学")
    # 我 / 来到 / 北京 / 清华大学
    np.testing.assert_array_equal(ids, [S, B, E, B, E, B, M, M, E])


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("北京天安门 \t，。ab1２😀é\u0301")), max_size=40))
def test_one_id_per_character_for_any_text(text):
    ids = word_boundary_ids(text)
    assert len(ids) == len(text)
    assert set(ids.tolist()) <= {B, M, E, S}
