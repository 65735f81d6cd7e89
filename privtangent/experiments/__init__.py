"""Experiments that reproduce the paper's tables on the embedded default (or on your data)."""
