"""Readers for published checkpoint formats and the name maps onto the encoder."""
