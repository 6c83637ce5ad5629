"""The MinHash-LSH machinery of :class:`~sftselect.selectors.dedup.MinHashDedup`,
vectorised with Arrow and NumPy.

Shingles. Each text is NFKC-normalised and lower-cased (Arrow's
``utf8_normalize`` and ``utf8_lower``) and cut into word tokens: runs of
letters, digits, combining marks and ``_`` (:data:`NON_WORD` separates them). A shingle is ``ngram`` consecutive
tokens; a text with fewer tokens (but at least one) has one shingle, all its
tokens; a text with no token has none. Each distinct token is hashed once with
xxh3-64; a shingle's 64-bit hash is a polynomial of its tokens' hashes (and its
length) passed through the splitmix64 finaliser, so the same shingle hashes
alike in every run and on every machine.

Signatures. ``num_perm`` hash functions ``h_i(x) = f(a_i x + b_i mod 2^32)``, with
``x`` the shingle hash folded to 32 bits, ``a_i`` odd and ``b_i`` drawn from a
generator seeded by ``seed``, and ``f`` a fixed 32-bit bijection (xor-shift,
multiply, xor-shift); the signature is the minimum of each over the text's
shingles (uint32). Computed in blocks of about 2,048 shingles, so the
temporary ``block x num_perm`` matrix stays in the processor's cache, in
``num_proc`` threads (NumPy releases the GIL); the rows are computed in batches,
so memory at any time is the signature matrix plus one batch's shingles.

Bands. :func:`lsh_params` chooses the bands ``b`` and rows ``r`` (``b*r <=
num_perm``) that minimise the sum of the false-positive and false-negative
probability areas, as datasketch's ``_optimal_param`` (datasketch 2.0.0,
``datasketch/lsh.py``) does with ``scipy.integrate.quad``; here the integrals
are Gauss-Legendre quadratures, exact for these polynomials.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .grouping import MAX_FULL_BUCKET, bucket_pairs, unique_pairs

__all__ = [
    "NON_WORD",
    "band_keys",
    "candidate_pairs",
    "lsh_params",
    "pair_jaccard",
    "shingle_hashes",
    "shingle_set_arrays",
    "shingle_sets",
    "signature_hashes",
    "signatures",
]

#: What separates word tokens: anything but letters, digits, combining marks and "_".
NON_WORD = r"[^\p{L}\p{N}\p{M}_]+"

_U64 = np.uint64
_MULT = _U64(0x100000001B3)  # the polynomial's base (FNV-64 prime)


def _splitmix64(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, in place on a uint64 array (wrapping arithmetic)."""
    h ^= h >> _U64(30)
    h *= _U64(0xBF58476D1CE4E5B9)
    h ^= h >> _U64(27)
    h *= _U64(0x94D049BB133111EB)
    h ^= h >> _U64(31)
    return h


def _token_hashes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Every word token's xxh3-64 hash (flat) and the token count of each text."""
    import xxhash

    n = len(texts)
    low = pc.utf8_lower(pc.utf8_normalize(texts.fill_null(""), form="NFKC"))
    lists = pc.split_pattern_regex(low, pattern=NON_WORD)
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    nonempty = pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False)
    parents = parents[nonempty]
    counts = np.bincount(parents, minlength=n).astype(np.int64)
    tokens = flat.filter(pa.array(nonempty))
    if len(tokens) == 0:
        return np.empty(0, dtype=np.uint64), counts
    encoded = pc.dictionary_encode(tokens)
    ids = encoded.indices.to_numpy(zero_copy_only=False)
    vocab = encoded.dictionary.to_pylist()
    vocab_hash = np.fromiter(
        (xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in vocab),
        dtype=np.uint64,
        count=len(vocab),
    )
    return vocab_hash[ids], counts


def shingle_hashes(texts: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hashes of every text's shingles (flat, uint64) and the offsets
    (``len(texts) + 1``, int64) of each text's run. Duplicates within a text stay."""
    th, counts = _token_hashes(texts)
    n = counts.size
    total_tokens = th.size
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    # The polynomial of every run of ngram tokens, from contiguous shifted slices.
    padded = np.concatenate([th, np.zeros(ngram, dtype=np.uint64)])
    poly = padded[:total_tokens].copy()
    for j in range(1, ngram):
        poly *= _MULT
        poly += padded[j : total_tokens + j]
    # A window starts at each token with ngram tokens of its text from there on.
    parent = np.repeat(np.arange(n), counts)
    pos = np.arange(total_tokens, dtype=np.int64) - starts[parent]
    full = pos <= (counts - ngram)[parent]
    nwin = np.where(counts == 0, 0, np.maximum(counts - ngram + 1, 1))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nwin, out=offsets[1:])
    h = np.empty(int(offsets[-1]), dtype=np.uint64)
    long_docs = counts >= ngram
    h_full = poly[full]
    h_full ^= _U64(ngram)
    where_full = np.repeat(long_docs, nwin)
    h[where_full] = h_full
    short = np.flatnonzero((counts > 0) & ~long_docs)
    if short.size:  # one shingle of all its tokens: the polynomial of fewer tokens
        hs = np.zeros(short.size, dtype=np.uint64)
        for j in range(ngram):
            part = padded[np.minimum(starts[short] + j, total_tokens)]
            part[counts[short] <= j] = 0
            hs *= _MULT
            hs += part
        hs ^= counts[short].astype(np.uint64)
        h[offsets[short]] = hs
    return _splitmix64(h), offsets


def shingle_sets(texts: pa.Array, ngram: int) -> list[np.ndarray]:
    """Each text's distinct shingle hashes, sorted (what the Jaccard verification compares)."""
    flat, offsets = shingle_set_arrays(texts, ngram)
    return [np.sort(flat[offsets[i] : offsets[i + 1]]) for i in range(offsets.size - 1)]


def _keyed(values: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """One uint64 key per (owner, value): equal keys mean the same owner and value (two
    different pairs share a key with probability about 2**-64)."""
    return values ^ _splitmix64(owner.astype(np.uint64) + _U64(0x9E3779B97F4A7C15))


def shingle_set_arrays(texts: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Every text's distinct shingle hashes (a run per text, in no particular order),
    flat, with the runs' offsets."""
    h, offsets = shingle_hashes(texts, ngram)
    n = offsets.size - 1
    doc = np.repeat(np.arange(n), np.diff(offsets))
    key = _keyed(h, doc)
    order = np.argsort(key, kind="stable")
    repeat = order[1:][key[order][1:] == key[order][:-1]]  # a shingle met again in its text
    keep = np.ones(h.size, dtype=bool)
    keep[repeat] = False
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc[keep], minlength=n), out=out[1:])
    return h[keep], out


def _gather(
    flat: np.ndarray, offsets: np.ndarray, docs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The runs of ``docs`` one after another, and each element's index in ``docs``."""
    lengths = offsets[docs + 1] - offsets[docs]
    owner = np.repeat(np.arange(docs.size), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = offsets[docs][owner] + (np.arange(int(lengths.sum())) - starts[owner])
    return flat[pos], owner


def pair_jaccard(
    flat: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 50_000
) -> np.ndarray:
    """The Jaccard similarity of runs ``a[p]`` and ``b[p]`` for every pair ``p``
    (:func:`shingle_set_arrays` runs; 0 when both are empty), vectorised: a value of a
    pair's two runs share a key; equal neighbours are counted after one sort."""
    out = np.zeros(a.size, dtype=np.float64)
    for start in range(0, a.size, chunk):
        pa_, pb_ = a[start : start + chunk], b[start : start + chunk]
        va, oa = _gather(flat, offsets, pa_)
        vb, ob = _gather(flat, offsets, pb_)
        keys = np.concatenate([_keyed(va, oa), _keyed(vb, ob)])
        owners = np.concatenate([oa, ob])
        order = np.argsort(keys)
        sorted_keys = keys[order]
        shared = sorted_keys[1:] == sorted_keys[:-1]
        owner = owners[order][1:][shared]
        inter = np.bincount(owner, minlength=pa_.size)
        sizes = (offsets[pa_ + 1] - offsets[pa_]) + (offsets[pb_ + 1] - offsets[pb_])
        union = sizes - inter
        out[start : start + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**31, size=num_perm, dtype=np.uint32) * np.uint32(2)) | np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


_BLOCK = 2048


def _sign_rows(
    x: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray
) -> None:
    """Signatures of the texts ``offsets`` delimits in ``x`` (uint32), into ``out``."""
    n = offsets.size - 1
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    out[:] = np.uint32(0xFFFFFFFF)
    if nonempty.size == 0:
        return
    ends = offsets[nonempty + 1]
    i = 0
    while i < nonempty.size:
        # Texts from nonempty[i] on, as many as fit in one block (at least one).
        base = offsets[nonempty[i]]
        j = int(np.searchsorted(ends, base + _BLOCK, side="right"))
        j = max(j, i + 1)
        rows = nonempty[i:j]
        end = offsets[rows[-1] + 1]
        h = np.multiply.outer(x[base:end], a)
        h += b
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
        out[rows] = np.minimum.reduceat(h, offsets[rows] - base, axis=0)
        i = j
    del n


def signatures(
    texts: pa.Array,
    *,
    ngram: int,
    num_perm: int,
    seed: int,
    num_proc: int = 1,
    batch_size: int = 10_000,
    on_progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """The ``[len(texts), num_perm]`` uint32 MinHash signatures (all ``2**32 - 1``
    for a text with no shingle)."""
    n = len(texts)
    a, b = _permutations(num_perm, seed)
    out = np.empty((n, num_perm), dtype=np.uint32)

    def one(start: int) -> int:
        stop = min(n, start + batch_size)
        h, offsets = shingle_hashes(texts.slice(start, stop - start), ngram)
        x = (h ^ (h >> _U64(32))).astype(np.uint32)
        _sign_rows(x, offsets, a, b, out[start:stop])
        return stop - start

    starts = range(0, n, batch_size)
    if num_proc <= 1:
        for s in starts:
            done = one(s)
            if on_progress is not None:
                on_progress(done)
    else:
        with ThreadPoolExecutor(max_workers=num_proc) as pool:
            for done in pool.map(one, starts):
                if on_progress is not None:
                    on_progress(done)
    return out


def _nodes(
    lo: float, hi: float, rule: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on ``[lo, hi]``."""
    x, w = rule
    return 0.5 * (hi - lo) * x + 0.5 * (hi + lo), 0.5 * (hi - lo) * w


def lsh_params(
    threshold: float, num_perm: int, weights: tuple[float, float] = (0.5, 0.5)
) -> tuple[int, int]:
    """``(bands, rows)`` minimising ``fp_weight * FP + fn_weight * FN`` (datasketch's rule).

    FP is the area under ``1 - (1 - s**r)**b`` on ``[0, threshold]``, FN the area
    under ``(1 - s**r)**b`` on ``[threshold, 1]``.
    """
    rule = np.polynomial.legendre.leggauss(max(64, num_perm // 2 + 2))
    s_fp, w_fp = _nodes(0.0, threshold, rule)
    s_fn, w_fn = _nodes(threshold, 1.0, rule)
    best, opt = float("inf"), (0, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = float(np.sum(w_fp * (1 - (1 - s_fp ** float(rows)) ** float(bands))))
            fn = float(np.sum(w_fn * (1 - s_fn ** float(rows)) ** float(bands)))
            error = fp * weights[0] + fn * weights[1]
            if error < best:
                best, opt = error, (bands, rows)
    return opt


def band_keys(sig: np.ndarray, bands: int, band_rows: int) -> np.ndarray:
    """The ``[len(sig), bands]`` uint64 bucket key of each row in each band: the band's
    values as a polynomial, through the splitmix64 finaliser (equal bands, equal keys)."""
    out = np.empty((sig.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        block = sig[:, band * band_rows : (band + 1) * band_rows].astype(np.uint64)
        key = np.zeros(block.shape[0], dtype=np.uint64)
        for c in range(band_rows):
            key *= _MULT
            key += block[:, c]
        out[:, band] = _splitmix64(key)
    return out


def signature_hashes(sig: np.ndarray) -> np.ndarray:
    """A uint64 hash of each whole signature (equal signatures hash alike)."""
    return band_keys(sig, 1, sig.shape[1])[:, 0]


def candidate_pairs(
    sig: np.ndarray, rows: np.ndarray, bands: int, band_rows: int, max_full: int = MAX_FULL_BUCKET
) -> np.ndarray:
    """The distinct pairs ``(i, j)``, ``i < j``, of ``rows`` whose signatures agree on
    at least one band (``sig`` holds the signatures of ``rows``); a bucket of more than
    ``max_full`` rows pairs each row with its ``max_full`` smallest rows only."""
    keys = band_keys(sig, bands, band_rows)
    m = keys.shape[0]
    pairs = bucket_pairs(
        np.tile(np.arange(bands), m), keys.ravel(), np.repeat(rows, bands), max_full
    )
    return unique_pairs(pairs)
