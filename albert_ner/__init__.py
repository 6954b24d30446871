"""albert-ner: Chinese named-entity recognition with ALBERT/ERNIE encoders and a BiLSTM-CRF head."""

__version__ = "0.1.0"
