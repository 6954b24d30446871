"""Standalone linear-chain CRF (ops + Keras layer) that compiles under XLA."""

from .layer import CRF
from .ops import crf_decode, crf_log_likelihood, crf_log_norm, crf_marginals, crf_sequence_score

__all__ = ["CRF", "crf_decode", "crf_log_likelihood", "crf_log_norm", "crf_marginals",
           "crf_sequence_score"]
