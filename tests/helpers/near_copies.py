"""Real Alpaca records with near-copies made by editing some of them, and a brute-force
reference for word-shingle Jaccard similarity (independent of the library's hashing)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import regex

#: Word tokens as the library defines them (letters, digits, marks, "_").
WORD = regex.compile(r"[\p{L}\p{N}\p{M}_]+")


def shingle_set(text: str, ngram: int) -> set[str]:
    """The set of word ``ngram``-shingles of ``text`` (NFKC, lower-cased), as strings."""
    words = WORD.findall(unicodedata.normalize("NFKC", text).lower())
    if not words:
        return set()
    return {" ".join(words[i : i + ngram]) for i in range(max(len(words) - ngram + 1, 1))}


def example_text(row: dict) -> str:
    return " ".join(row[k] for k in ("instruction", "input", "output"))


def _edit(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    kind = int(rng.integers(4))
    if len(words) < 4:
        return text.upper()
    i = int(rng.integers(len(words) - 1))
    if kind == 0:  # two neighbouring words swapped
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if kind == 1:  # case and whitespace changed
        return "  \n".join(w.upper() if j % 3 == 0 else w for j, w in enumerate(words))
    if kind == 2:  # a word replaced
        words[i] = "zebra"
        return " ".join(words)
    del words[i]  # a word deleted
    return "\t".join(words)


def pool_with_near_copies(
    data_dir: Path, n_records: int, n_copies: int, seed: int = 0
) -> tuple[list[dict], list[int]]:
    """``n_records`` distinct real Alpaca records, then ``n_copies`` edited copies of some
    of them (one field edited per copy); returns the rows and, for each copy, its source."""
    from sftselect.data.reference import build_alpaca_pool

    rows = build_alpaca_pool(data_dir).select(range(n_records)).to_list()
    rng = np.random.default_rng(seed)
    sources = rng.choice(n_records, size=n_copies, replace=False).tolist()
    copies = []
    for src in sources:
        row = dict(rows[src])
        field = ["instruction", "output", "output"][int(rng.integers(3))]
        row[field] = _edit(row[field], rng)
        copies.append(row)
    return rows + copies, sources


def brute_force_pairs(texts: list[str], ngram: int, threshold: float) -> set[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, whose shingle Jaccard is at least ``threshold``
    (all pairs, through a sparse document-by-shingle product)."""
    from scipy import sparse

    sets = [shingle_set(t, ngram) for t in texts]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, s in enumerate(sets):
        for sh in s:
            rows.append(i)
            cols.append(vocab.setdefault(sh, len(vocab)))
    m = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(sets), len(vocab))
    )
    inter = sparse.triu(m @ m.T, k=1).tocoo()
    sizes = np.array([len(s) for s in sets])
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = jac >= threshold
    return set(zip(inter.row[keep].tolist(), inter.col[keep].tolist()))
