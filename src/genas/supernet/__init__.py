"""SPOS supernet training."""
