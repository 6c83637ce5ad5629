"""Shared test helpers: data paths, hypothesis strategies, the conformance cases, tiny models."""
