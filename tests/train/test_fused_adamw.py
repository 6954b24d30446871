"""optim.FusedAdamW against tf.keras AdamW: the same variables and moments after several steps (dense and
IndexedSlices gradients with repeated rows, same-shaped variables, no decay on LayerNorm/bias), in graph mode
and inside an XLA-compiled step, and checkpoints that restore either way."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.train.optim import NO_DECAY, FusedAdamW, WarmupLinearDecay, make_optimizer

STEPS = 4


def _variables():
    rng = np.random.default_rng(0)
    shapes = {"enc/q/kernel": (6, 6), "enc/k/kernel": (6, 6), "enc/q/bias": (6,), "enc/LayerNorm/gamma": (6,),
              "enc/word_embeddings": (9, 6)}
    return [tf.Variable(rng.normal(size=s).astype(np.float32), name=n) for n, s in shapes.items()]


def _keras_adamw(variables):
    opt = tf.keras.optimizers.AdamW(learning_rate=WarmupLinearDecay(0.05, 1, 20), weight_decay=0.1, epsilon=1e-6,
                                    name="adamw")
    opt.exclude_from_weight_decay(var_names=list(NO_DECAY))
    opt.build(variables)
    return opt


def _grads(step: int, variables):
    rng = np.random.default_rng(100 + step)
    out = []
    for v in variables:
        if "word_embeddings" in v.name:  # rows 2 and 7 twice: repeated rows add up
            rows = np.array([2, 7, 2, 0, 7], np.int32)
            values = rng.normal(size=(len(rows), v.shape[1])).astype(np.float32)
            out.append(tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant(v.shape, tf.int64)))
        else:
            out.append(tf.constant(rng.normal(size=v.shape).astype(np.float32)))
    return out


def _train(make, jit: bool):
    variables = _variables()
    opt = make(variables)
    grads = [_grads(s, variables) for s in range(STEPS)]

    @tf.function(jit_compile=jit)
    def apply(*flat):
        opt.apply_gradients(zip(tf.nest.pack_sequence_as(grads[0], flat, expand_composites=True), variables))

    for g in grads:
        apply(*tf.nest.flatten(g, expand_composites=True))
    slots = [s.numpy() for s in opt._momentums + opt._velocities]
    return [v.numpy() for v in variables], slots, opt, variables


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_same_updates_as_keras_adamw(jit):
    want, want_slots, _, _ = _train(_keras_adamw, jit=False)
    got, got_slots, opt, _ = _train(lambda vs: make_optimizer(0.05, 0.1, 1, 20, vs, "adamw"), jit=jit)
    assert isinstance(opt, FusedAdamW) and int(opt.iterations) == STEPS
    for g, w in zip(got + got_slots, want + want_slots):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    start = [v.numpy() for v in _variables()]
    assert all(np.abs(g - s).max() > 1e-3 for g, s in zip(got, start))  # every variable moved


def test_no_decay_where_keras_has_none():
    variables = _variables()
    opt = make_optimizer(0.05, 0.5, 0, 20, variables, "adamw")
    before = [v.numpy() for v in variables]
    opt.apply_gradients(zip([tf.zeros_like(v) for v in variables], variables))  # only decay can move them
    moved = {v.name.split(":")[0]: not np.allclose(v.numpy(), b) for v, b in zip(variables, before)}
    assert moved == {"enc/q/kernel": True, "enc/k/kernel": True, "enc/q/bias": False, "enc/LayerNorm/gamma": False,
                     "enc/word_embeddings": True}


def test_checkpoints_restore_between_keras_and_fused(tmp_path):
    _, _, keras_opt, keras_vars = _train(_keras_adamw, jit=False)
    path = tf.train.Checkpoint(opt=keras_opt, v=keras_vars).write(str(tmp_path / "ckpt"))
    variables = _variables()
    fused = make_optimizer(0.05, 0.1, 1, 20, variables, "adamw")
    tf.train.Checkpoint(opt=fused, v=variables).read(path).assert_consumed()
    assert int(fused.iterations) == STEPS
    for a, b in zip(fused._momentums + fused._velocities, keras_opt._momentums + keras_opt._velocities):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdamW(learning_rate=0.1, amsgrad=True)
