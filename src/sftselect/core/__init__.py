"""The selector contract, composition, ranking rules, provenance and parameter checks.

Nothing here imports torch, transformers, Ray or scikit-learn (an import-linter
contract in ``pyproject.toml`` checks it).
"""
