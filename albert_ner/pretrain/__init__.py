"""Pretraining an encoder on unlabelled text: preprocessing, masking, the pretraining task."""
