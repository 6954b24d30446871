"""albert_ner.data.posseg gives exactly jieba.posseg's words and tags (it is only a faster search)."""
import jieba
import jieba.posseg
import pytest
from hypothesis import given, settings, strategies as st

from albert_ner.data import posseg
from albert_ner.data.corpus import read_corpus


def reference(text):
    return [(p.word, p.flag) for p in jieba.posseg.cut(text)]


def test_person_and_place_names_from_the_hmm():
    text = "欧阳明月和司马小凡昨天去了乌兰察布盟。"
    assert list(posseg.cut(text)) == reference(text)
    assert ("".join(w for w, _ in posseg.cut(text))) == text


def test_corpus_sentences_match_jieba(shared_dir):
    sentences, _ = read_corpus(shared_dir / "data/msra/test.txt")
    texts = [s.text for s in sentences[:400]]
    mismatched = [t for t in texts if list(posseg.cut(t)) != reference(t)]
    assert not mismatched, mismatched[:3]


# Common and rare Han characters (some outside jieba's HMM character table), characters of names,
# Latin letters, digits and the punctuation jieba's patterns treat specially, whitespace, emoji.
ALPHABET = list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
                "张王李赵欧阳司马诸葛明月小凡燕飞乌兰察布盟齐齐哈尔鄂尔多斯丶乂亍彡夂龘靐齉")
ALPHABET += list("abcXYZ0123456789.+#&_ \t\r\n，。、《》！？“”（）：；—…１２３😀é\u0301")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(ALPHABET), max_size=60))
def test_generated_text_matches_jieba(text):
    assert list(posseg.cut(text)) == reference(text)


@pytest.fixture
def user_word():
    word = "氪氙氡铋钋"  # made-up, so no other test sees it
    jieba.add_word(word, freq=1000, tag="nz")
    yield word
    jieba.del_word(word)


def test_user_dictionary_words_and_tags_are_used(user_word):
    text = f"昨天{user_word}公司成立"
    assert (user_word, "nz") in list(posseg.cut(text))
    assert list(posseg.cut(text)) == reference(text)
