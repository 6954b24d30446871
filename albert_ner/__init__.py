"""albert-ner: Chinese named-entity recognition with ALBERT/ERNIE encoders and a BiLSTM-CRF head.

Importing the package hides TensorFlow's C++ start-up lines (cuDNN/cuFFT/cuBLAS registration, "Could not
find TensorRT", XLA and oneDNN notices), which read like errors but are not, by setting
TF_CPP_MIN_LOG_LEVEL before TensorFlow is first imported. A level the user set is kept;
ALBERT_NER_VERBOSE=1 (or `albert-ner --verbose`) shows them.

The Python API, `albert_ner.load(model_dir)` -> Tagger (see albert_ner/api.py), is imported on first use,
so importing the package stays cheap and does not load TensorFlow.
"""
import os

__version__ = "0.1.0"

TF_LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
VERBOSE_VAR = "ALBERT_NER_VERBOSE"
QUIET_TF_LOG_LEVEL = "3"  # INFO, WARNING and ERROR lines hidden: the registration lines are ERROR-level
_quieted_by_us = False


def verbose_from_env() -> bool:
    """True when ALBERT_NER_VERBOSE is set to anything but an empty string, 0, false, no or off."""
    return os.environ.get(VERBOSE_VAR, "").strip().lower() not in ("", "0", "false", "no", "off")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Hide TensorFlow's C++ log lines unless `verbose` or the user set TF_CPP_MIN_LOG_LEVEL themselves.

    Takes effect only before TensorFlow is first imported; `verbose` undoes this package's own setting."""
    global _quieted_by_us
    if verbose:
        if _quieted_by_us and os.environ.get(TF_LOG_LEVEL_VAR) == QUIET_TF_LOG_LEVEL:
            del os.environ[TF_LOG_LEVEL_VAR]
        _quieted_by_us = False
    elif TF_LOG_LEVEL_VAR not in os.environ:
        os.environ[TF_LOG_LEVEL_VAR] = QUIET_TF_LOG_LEVEL
        _quieted_by_us = True


quiet_tensorflow(verbose_from_env())


_API_NAMES = ("load", "Tagger", "TaggingError")


def __getattr__(name: str):
    """`albert_ner.load` & co., imported from albert_ner.api when first asked for."""
    if name in _API_NAMES:
        from albert_ner import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API_NAMES))
