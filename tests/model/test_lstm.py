"""model/lstm.py's BiLSTM against Keras' Bidirectional(RNN(LSTMCell)): same variables, outputs and gradients
in graph mode and under XLA, zero past each length, no retracing, and mixed precision."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.model.lstm import BiLSTM

B, T, IN, UNITS = 4, 9, 6, 5
LENGTHS = [9, 5, 1, 0]  # full, padded, a single step, an empty padding row


def _keras_reference(units: int) -> tf.keras.layers.Bidirectional:
    """The layer the tagger used before: Keras computes it, step by step."""
    cell = tf.keras.layers.LSTMCell(units, name="lstm_cell")
    return tf.keras.layers.Bidirectional(tf.keras.layers.RNN(cell, return_sequences=True, name="rnn"),
                                         name="bilstm")


def _pair(seed: int = 0):
    """(Keras reference, BiLSTM) built on the same input, with the same random weights (scale 0.5)."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(B, T, IN)).astype(np.float32))
    mask = tf.sequence_mask(LENGTHS, T)
    ref, fast = _keras_reference(UNITS), BiLSTM(UNITS, name="bilstm")
    ref(x, mask=mask)
    fast(x, mask=mask)
    for r, f in zip(ref.weights, fast.weights):
        value = rng.normal(0.0, 0.5, r.shape).astype(np.float32)
        r.assign(value)
        f.assign(value)
    return ref, fast, x, mask


def _outputs_and_grads(layer, x, mask, weights, jit: bool):
    @tf.function(jit_compile=jit)
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, mask=mask)
            loss = tf.reduce_sum(tf.sin(y) * weights)
        return y, tape.gradient(loss, [x] + layer.trainable_variables)

    y, grads = run(x)
    return y.numpy(), [g.numpy() for g in grads]


def test_same_variables_as_keras_bidirectional():
    ref, fast, _, _ = _pair()
    assert [(v.name, tuple(v.shape)) for v in fast.weights] == [(v.name, tuple(v.shape)) for v in ref.weights]
    assert [v.name for v in fast.weights][:3] == ["bilstm/forward_rnn/lstm_cell/kernel:0",
                                                  "bilstm/forward_rnn/lstm_cell/recurrent_kernel:0",
                                                  "bilstm/forward_rnn/lstm_cell/bias:0"]


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_outputs_and_gradients_match_keras(jit):
    ref, fast, x, mask = _pair()
    weights = tf.constant(np.random.default_rng(1).normal(size=(B, T, 2 * UNITS)).astype(np.float32))
    y_ref, g_ref = _outputs_and_grads(ref, x, mask, weights, jit=False)
    y, g = _outputs_and_grads(fast, x, mask, weights, jit=jit)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    assert len(g) == len(g_ref) == 7  # x and the six LSTM weights
    for got, want in zip(g, g_ref):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, atol=1e-5 * scale)
    assert np.abs(g[0][3]).max() == 0.0  # nothing flows into the empty row


def test_zero_past_length_and_padding_has_no_say():
    _, fast, x, mask = _pair()
    y = fast(x, mask=mask).numpy()
    for row, n in enumerate(LENGTHS):
        assert not y[row, n:].any()
        if n:
            assert np.abs(y[row, :n]).min() > 0.0
    noisy = x.numpy().copy()
    for row, n in enumerate(LENGTHS):
        noisy[row, n:] = 100.0
    np.testing.assert_array_equal(fast(tf.constant(noisy), mask=mask).numpy(), y)


def test_xla_step_traces_once_for_a_fixed_shape():
    _, fast, x, mask = _pair()
    opt = tf.keras.optimizers.SGD(0.01)
    opt.build(fast.trainable_variables)  # its variables exist before the trace

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fast(x, mask=mask) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, fast.trainable_variables), fast.trainable_variables))
        return loss

    losses = [float(step(x)) for _ in range(3)]
    assert step.experimental_get_tracing_count() == 1
    assert losses[2] < losses[0]


def test_mixed_bfloat16_computes_in_bfloat16_close_to_float32():
    _, fast32, x, mask = _pair()
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        fast16 = BiLSTM(UNITS, name="bilstm")
        fast16(x, mask=mask)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    for a, b in zip(fast16.weights, fast32.weights):
        a.assign(b)
    assert all(v.dtype == tf.float32 for v in fast16.weights)
    y16 = fast16(x, mask=mask)
    assert y16.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y16, tf.float32).numpy(), fast32(x, mask=mask).numpy(), atol=0.05)


def test_unsupported_arguments_are_refused():
    _, fast, x, mask = _pair()
    with pytest.raises(ValueError, match="bilstm: initial_state"):
        fast(x, mask=mask, initial_state=[tf.zeros([B, UNITS])] * 4)


def test_config_round_trip():
    layer = BiLSTM(7, name="bilstm")
    again = BiLSTM.from_config(layer.get_config())
    assert (again.units, again.name, again.forward_layer.cell.units) == (7, "bilstm", 7)
