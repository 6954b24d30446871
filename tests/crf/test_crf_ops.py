"""Tests for crf.ops: agreement with tensorflow_addons, brute-force enumeration, XLA compilation."""

import itertools
import warnings

import numpy as np
import pytest
import tensorflow as tf

from crf import crf_decode, crf_log_likelihood, crf_log_norm, crf_marginals, crf_sequence_score

with warnings.catch_warnings():
    # tensorflow_addons prints an end-of-life deprecation UserWarning on import.
    warnings.simplefilter("ignore")
    import tensorflow_addons as tfa

TOL = dict(rtol=1e-5, atol=1e-5)


def _random_case(seed, batch=8, max_len=6, num_tags=5, min_len=1):
    """Random potentials / transitions / tags, lengths covering min_len and max_len."""
    rng = np.random.default_rng(seed)
    potentials = rng.normal(size=(batch, max_len, num_tags)).astype(np.float32)
    transitions = rng.normal(size=(num_tags, num_tags)).astype(np.float32)
    tags = rng.integers(0, num_tags, size=(batch, max_len)).astype(np.int32)
    lengths = rng.integers(min_len, max_len + 1, size=(batch,)).astype(np.int32)
    lengths[0], lengths[1] = 1, max_len
    if min_len <= 0:
        lengths[2] = 0
    return potentials, tags, lengths, transitions


# --------------------------------------------------------------------------- tfa agreement


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_log_likelihood_matches_tfa(seed):
    potentials, tags, lengths, transitions = _random_case(seed, min_len=0)
    ours = crf_log_likelihood(potentials, tags, lengths, transitions)
    ref, _ = tfa.text.crf_log_likelihood(potentials, tags, lengths, tf.constant(transitions))
    assert ours.dtype == tf.float32 and ours.shape == (8,)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), **TOL)
    assert ours.numpy()[2] == 0.0  # length-0 row

    # Pieces agree too.
    np.testing.assert_allclose(
        crf_log_norm(potentials, lengths, transitions).numpy(),
        tfa.text.crf_log_norm(potentials, lengths, tf.constant(transitions)).numpy(),
        **TOL,
    )
    np.testing.assert_allclose(
        crf_sequence_score(potentials, tags, lengths, transitions).numpy(),
        tfa.text.crf_sequence_score(potentials, tags, lengths, tf.constant(transitions)).numpy(),
        **TOL,
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_decode_matches_tfa(seed):
    potentials, _, lengths, transitions = _random_case(seed, min_len=1)
    tags, score = crf_decode(potentials, lengths, transitions)
    ref_tags, ref_score = tfa.text.crf_decode(potentials, tf.constant(transitions), lengths)
    assert tags.dtype == tf.int32 and score.dtype == tf.float32
    mask = np.arange(potentials.shape[1])[None, :] < lengths[:, None]
    np.testing.assert_array_equal(tags.numpy()[mask], ref_tags.numpy()[mask])
    assert np.all(tags.numpy()[~mask] == 0)
    np.testing.assert_allclose(score.numpy(), ref_score.numpy(), **TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_tfa(seed):
    potentials, tags, lengths, transitions = _random_case(seed, min_len=0)
    pot = tf.constant(potentials)

    def grads(fn, trans):
        with tf.GradientTape() as tape:
            tape.watch(pot)
            loss = tf.reduce_sum(fn(trans))
        return tape.gradient(loss, [pot, trans])

    ours = grads(lambda t: crf_log_likelihood(pot, tags, lengths, t), tf.Variable(transitions))
    ref = grads(lambda t: tfa.text.crf_log_likelihood(pot, tags, lengths, t)[0], tf.Variable(transitions))
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), tf.convert_to_tensor(b).numpy(), **TOL)


def test_single_timestep_matches_tfa():
    potentials, tags, lengths, transitions = _random_case(5, batch=4, max_len=1)
    ll = crf_log_likelihood(potentials, tags, lengths, transitions)
    ref_ll, _ = tfa.text.crf_log_likelihood(potentials, tags, lengths, tf.constant(transitions))
    np.testing.assert_allclose(ll.numpy(), ref_ll.numpy(), **TOL)
    dec, score = crf_decode(potentials, lengths, transitions)
    ref_dec, ref_score = tfa.text.crf_decode(potentials, tf.constant(transitions), lengths)
    np.testing.assert_array_equal(dec.numpy(), ref_dec.numpy())
    np.testing.assert_allclose(score.numpy(), ref_score.numpy(), **TOL)


# --------------------------------------------------------------------------- brute force


def _path_score(pot, trans, path):
    score = sum(pot[t, y] for t, y in enumerate(path))
    score += sum(trans[a, b] for a, b in zip(path[:-1], path[1:]))
    return float(score)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brute_force_enumeration(seed):
    rng = np.random.default_rng(100 + seed)
    num_tags, max_len = 3, 4
    pot = rng.normal(size=(max_len, num_tags)).astype(np.float32)
    trans = rng.normal(size=(num_tags, num_tags)).astype(np.float32)

    for length in range(max_len + 1):
        paths = list(itertools.product(range(num_tags), repeat=length))  # 3**length paths
        n = len(paths)
        # Positions >= length get random (even out-of-range) tags and potentials: must be ignored.
        tags = rng.integers(-1, num_tags + 1, size=(n, max_len)).astype(np.int32)
        for i, p in enumerate(paths):
            tags[i, :length] = p
        pots = np.repeat(pot[None], n, axis=0)
        pots[:, length:, :] = rng.normal(scale=10.0, size=pots[:, length:, :].shape)
        lengths = np.full((n,), length, dtype=np.int64)

        expected = np.array([_path_score(pot, trans, p) for p in paths])
        scores = crf_sequence_score(pots, tags, lengths, trans).numpy()
        np.testing.assert_allclose(scores, expected, **TOL)

        log_z = np.logaddexp.reduce(expected)  # length 0: one empty path of score 0 -> 0
        log_norm = crf_log_norm(pots, lengths, trans).numpy()
        np.testing.assert_allclose(log_norm, np.full(n, log_z), **TOL)
        np.testing.assert_allclose(
            crf_log_likelihood(pots, tags, lengths, trans).numpy(), expected - log_z, **TOL
        )

        best = int(np.argmax(expected))
        dec, best_score = crf_decode(pots[:1], lengths[:1], trans)
        want = np.zeros(max_len, dtype=np.int32)
        want[:length] = paths[best]
        np.testing.assert_array_equal(dec.numpy()[0], want)
        np.testing.assert_allclose(best_score.numpy()[0], expected[best], **TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_marginals_equal_brute_force_posteriors(seed):
    rng = np.random.default_rng(200 + seed)
    num_tags, max_len = 3, 5
    pot = rng.normal(size=(max_len, num_tags)).astype(np.float32)
    trans = rng.normal(size=(num_tags, num_tags)).astype(np.float32)
    lengths = np.arange(max_len + 1, dtype=np.int32)  # one row per length 0..T
    pots = np.repeat(pot[None], len(lengths), axis=0)
    got = crf_marginals(pots, lengths, trans).numpy()
    for row, length in enumerate(lengths):
        want = np.zeros((max_len, num_tags))
        paths = list(itertools.product(range(num_tags), repeat=int(length)))
        weights = np.exp([_path_score(pot, trans, p) for p in paths])
        for path, w in zip(paths, weights):
            for t, y in enumerate(path):
                want[t, y] += w / weights.sum()
        if length == 0:
            want[:] = 0.0
        np.testing.assert_allclose(got[row], want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got[row, :length].sum(-1), 1.0, rtol=1e-5)


def test_marginals_compile_under_xla():
    pots, _, lengths, trans = _random_case(7, min_len=0)
    eager = crf_marginals(pots, lengths, trans).numpy()
    compiled = tf.function(crf_marginals, jit_compile=True)(pots, lengths, trans).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- input handling


def test_accepts_variable_and_int64_and_ignores_padding():
    potentials, tags, lengths, transitions = _random_case(7, min_len=0)
    base_ll = crf_log_likelihood(potentials, tags, lengths, transitions).numpy()
    base_dec, base_score = crf_decode(potentials, lengths, transitions)

    var = tf.Variable(transitions)
    ll = crf_log_likelihood(potentials, tags.astype(np.int64), lengths.astype(np.int64), var)
    np.testing.assert_allclose(ll.numpy(), base_ll, **TOL)

    # Changing anything past each length changes nothing.
    mask = np.arange(potentials.shape[1])[None, :] < lengths[:, None]
    noisy_pot = np.where(mask[..., None], potentials, 50.0 * np.ones_like(potentials))
    noisy_tags = np.where(mask, tags, 3)
    np.testing.assert_allclose(crf_log_likelihood(noisy_pot, noisy_tags, lengths, var).numpy(), base_ll, **TOL)
    dec, score = crf_decode(noisy_pot, lengths, var)
    np.testing.assert_array_equal(dec.numpy(), base_dec.numpy())
    np.testing.assert_allclose(score.numpy(), base_score.numpy(), **TOL)
    assert np.all(dec.numpy()[2] == 0) and score.numpy()[2] == 0.0  # length-0 row


# --------------------------------------------------------------------------- XLA


def _forward_and_grads(potentials, tags, lengths, transitions):
    with tf.GradientTape() as tape:
        tape.watch(potentials)
        ll = crf_log_likelihood(potentials, tags, lengths, transitions)
        loss = -tf.reduce_sum(ll * tf.range(1.0, 1.0 + tf.cast(tf.shape(ll)[0], tf.float32)))
    d_pot, d_trans = tape.gradient(loss, [potentials, transitions])
    tags_hat, best = crf_decode(potentials, lengths, transitions)
    return ll, tags_hat, best, d_pot, tf.convert_to_tensor(d_trans)


@pytest.fixture(scope="module")
def xla_case():
    potentials, tags, lengths, transitions = _random_case(11, batch=6, max_len=7, num_tags=5, min_len=0)
    lengths[3] = 4  # padded rows: 0, 1, 4, ... plus a full row
    trans_var = tf.Variable(transitions, name="transitions")
    eager = _forward_and_grads(tf.constant(potentials), tf.constant(tags), tf.constant(lengths), trans_var)
    return potentials, tags, lengths, trans_var, eager


def test_xla_forward_decode_and_gradients_match(xla_case):
    potentials, tags, lengths, trans_var, eager = xla_case
    jitted = tf.function(_forward_and_grads, jit_compile=True)
    out = jitted(tf.constant(potentials), tf.constant(tags), tf.constant(lengths), trans_var)
    # The function really is XLA-compilable (experimental_get_compiler_ir raises otherwise).
    hlo = jitted.experimental_get_compiler_ir(
        tf.constant(potentials), tf.constant(tags), tf.constant(lengths), trans_var
    )(stage="hlo")
    assert "while" in hlo  # tf.scan lowered to an XLA while loop, not unrolled

    names = ["log_likelihood", "tags", "best_score", "d_potentials", "d_transitions"]
    for name, a, b in zip(names, out, eager):
        if name == "tags":
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        else:
            np.testing.assert_allclose(a.numpy(), b.numpy(), err_msg=name, **TOL)
    # Padded positions get no gradient; the length-0 row has none at all.
    d_pot = out[3].numpy()
    mask = np.arange(potentials.shape[1])[None, :] < lengths[:, None]
    assert np.all(d_pot[~mask] == 0.0)
    assert lengths[2] == 0 and np.all(d_pot[2] == 0.0) and out[0].numpy()[2] == 0.0
    assert np.all(out[1].numpy()[2] == 0) and out[2].numpy()[2] == 0.0


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_xla_low_precision_potentials(xla_case, dtype):
    potentials, tags, lengths, trans_var, eager = xla_case

    @tf.function(jit_compile=True)
    def run(pot):
        ll = crf_log_likelihood(pot, tags, lengths, trans_var)
        dec, best = crf_decode(pot, lengths, trans_var)
        return ll, dec, best

    low = tf.cast(potentials, dtype)
    ll, dec, best = run(low)
    assert ll.dtype == tf.float32 and best.dtype == tf.float32 and dec.dtype == tf.int32
    # Exactly the float32 computation on the rounded inputs ...
    rounded = tf.cast(low, tf.float32)
    np.testing.assert_allclose(ll.numpy(), crf_log_likelihood(rounded, tags, lengths, trans_var).numpy(), **TOL)
    np.testing.assert_allclose(best.numpy(), crf_decode(rounded, lengths, trans_var)[1].numpy(), **TOL)
    # ... and close to the full-precision result.
    atol = 5e-3 if dtype == tf.float16 else 5e-2
    np.testing.assert_allclose(ll.numpy(), eager[0].numpy(), atol=atol)
    np.testing.assert_allclose(best.numpy(), eager[2].numpy(), atol=atol)
