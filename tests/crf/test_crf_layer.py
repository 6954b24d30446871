"""Tests for crf.CRF: float32 transitions under mixed precision, XLA train step, config round trip."""

import numpy as np
import pytest
import tensorflow as tf

from crf import CRF, crf_decode, crf_log_likelihood


@pytest.fixture
def mixed_float16():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


def _short_name(variable):
    return variable.name.split("/")[-1].split(":")[0]


def _case(seed=0, batch=4, max_len=5, num_tags=4):
    rng = np.random.default_rng(seed)
    potentials = rng.normal(size=(batch, max_len, num_tags)).astype(np.float32)
    tags = rng.integers(0, num_tags, size=(batch, max_len)).astype(np.int32)
    lengths = np.array([max_len, 1, 0, 3][:batch], dtype=np.int32)
    return potentials, tags, lengths


def test_transitions_stay_float32_under_mixed_precision(mixed_float16):
    assert tf.keras.layers.Dense(3).compute_dtype == "float16"  # the policy is in effect
    layer = CRF(4, name="crf")
    assert layer.dtype_policy.name == "float32" and layer.compute_dtype == "float32"

    potentials, tags, lengths = _case()
    pot16 = tf.constant(potentials, tf.float16)
    decoded = layer(pot16, lengths)
    assert layer.built
    assert decoded.dtype == tf.int32 and decoded.shape == (4, 5)

    trans = layer.transitions
    assert trans.dtype == tf.float32
    assert type(trans).__name__ != "AutoCastVariable"
    assert [_short_name(w) for w in layer.trainable_weights] == ["transitions"]
    assert tuple(trans.shape) == (4, 4)

    @tf.function(jit_compile=True)
    def step(pot):
        with tf.GradientTape() as tape:
            tape.watch(pot)
            ll = layer.log_likelihood(pot, tags, lengths)
            loss = tf.reduce_sum(ll)
        return ll, tape.gradient(loss, [pot, layer.transitions])

    ll, (d_pot, d_trans) = step(pot16)
    assert ll.dtype == tf.float32 and d_trans.dtype == tf.float32 and d_pot.dtype == tf.float16
    ref = crf_log_likelihood(tf.cast(pot16, tf.float32), tags, lengths, trans.numpy())
    np.testing.assert_allclose(ll.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(decoded.numpy(), crf_decode(pot16, lengths, trans.numpy())[0].numpy())


def test_log_likelihood_builds_layer_and_call_matches_ops():
    potentials, tags, lengths = _case(1)
    layer = CRF(4)
    assert not layer.built
    ll = layer.log_likelihood(potentials, tags, lengths)
    assert layer.built and ll.dtype == tf.float32 and ll.shape == (4,)
    trans = layer.transitions.numpy()
    np.testing.assert_allclose(ll.numpy(), crf_log_likelihood(potentials, tags, lengths, trans).numpy(), rtol=1e-6)
    assert ll.numpy()[2] == 0.0

    decoded = layer(potentials, lengths)
    np.testing.assert_array_equal(decoded.numpy(), crf_decode(potentials, lengths, trans)[0].numpy())
    assert np.all(decoded.numpy()[2] == 0) and np.all(decoded.numpy()[1, 1:] == 0)


def test_build_rejects_wrong_tag_count():
    with pytest.raises(ValueError):
        CRF(4)(np.zeros((2, 3, 5), np.float32), np.array([3, 2]))


def test_config_round_trip():
    layer = CRF(7, name="my_crf")
    config = layer.get_config()
    assert config["num_tags"] == 7 and config["name"] == "my_crf"

    clone = CRF.from_config(config)
    assert clone.num_tags == 7 and clone.name == "my_crf" and clone.dtype_policy.name == "float32"

    rng = np.random.default_rng(3)
    potentials = rng.normal(size=(2, 6, 7)).astype(np.float32)
    lengths = np.array([6, 4])
    out = layer(potentials, lengths)
    clone(potentials, lengths)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(potentials, lengths).numpy(), out.numpy())

    # A config saved under another dtype still yields a float32 layer.
    clone16 = CRF.from_config({**config, "dtype": "mixed_float16"})
    assert clone16.dtype_policy.name == "float32"


def test_log_likelihood_builds_layer_inside_jit_train_step():
    potentials, tags, lengths = _case(2)
    layer = CRF(4)
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.1)

    @tf.function(jit_compile=True)
    def step(pot):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_sum(layer.log_likelihood(pot, tags, lengths))
        optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables))
        return loss

    losses = [float(step(tf.constant(potentials))) for _ in range(5)]
    assert layer.built and layer.transitions.dtype == tf.float32
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


# Keras' seeded initializers call random.randint with a float bound (not our code).
@pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")
def test_jit_train_step_learns_transitions():
    """Potentials only reveal the first tag; the gold path then cycles y -> (y + 1) % K.

    Only the transition matrix can explain positions t > 0, so decoding the gold tags
    requires the optimizer to update the CRF weight inside the XLA-compiled step.
    """
    tf.keras.utils.set_random_seed(0)
    num_tags, batch, max_len = 4, 16, 6
    rng = np.random.default_rng(0)
    first = rng.integers(0, num_tags, size=(batch,))
    gold = ((first[:, None] + np.arange(max_len)[None, :]) % num_tags).astype(np.int32)
    lengths = rng.integers(1, max_len + 1, size=(batch,)).astype(np.int32)
    lengths[:2] = [max_len, 1]
    features = np.zeros((batch, max_len, num_tags), np.float32)
    features[np.arange(batch), 0, first] = 1.0

    dense = tf.keras.layers.Dense(num_tags)
    crf = CRF(num_tags)
    dense.build((None, max_len, num_tags))
    crf.build((None, max_len, num_tags))
    variables = dense.trainable_variables + crf.trainable_variables
    optimizer = tf.keras.optimizers.Adam(learning_rate=0.1)
    optimizer.build(variables)
    initial_transitions = crf.transitions.numpy().copy()

    x, y, lens = tf.constant(features), tf.constant(gold), tf.constant(lengths)

    @tf.function(jit_compile=True)
    def train_step(x, y, lens):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(crf.log_likelihood(dense(x), y, lens))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(train_step(x, y, lens)) for _ in range(30)]
    assert losses[-1] < 0.1 * losses[0], losses
    assert not np.allclose(crf.transitions.numpy(), initial_transitions)
    assert crf.transitions.dtype == tf.float32

    decoded = tf.function(lambda x, lens: crf(dense(x), lens), jit_compile=True)(x, lens).numpy()
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(decoded, np.where(mask, gold, 0))
