"""Stdlib unittest suite for the pure parts of trex_hf_trl (run from recipes/hf-trl or via -t)."""
