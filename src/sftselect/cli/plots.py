"""The PNGs the command line writes: a length histogram and a 2-D PCA picture
of embeddings with the selection (matplotlib, Agg backend, atomic writes through
an unpredictable temporary name, :mod:`sftselect.core.atomic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_file
from ..core.extras import require_extra

__all__ = ["pca_2d", "plot_embedding", "plot_histogram"]


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=120)
    finally:
        plt.close(fig)


def plot_histogram(values: np.ndarray, path: Path, bins: int, title: str) -> None:
    """A histogram of ``values`` with the median marked."""
    require_extra("matplotlib", "plot", "writing a plot").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=bins, color="#3b6ea8")
    ax.set_xlabel("response length")
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.axvline(np.median(values), color="k", linestyle="--", linewidth=1, label="median")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def pca_2d(X: np.ndarray) -> np.ndarray:
    """The rows of ``X`` projected on their first two principal axes (signs fixed)."""
    Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    if Xc.shape[1] == 0:
        return np.zeros((X.shape[0], 2))
    _, vecs = np.linalg.eigh(Xc.T @ Xc)
    axes = vecs[:, ::-1][:, :2]
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    return Xc @ (axes * np.where(signs == 0, 1.0, signs))


def plot_embedding(
    X: np.ndarray,
    labels: np.ndarray | None,
    chosen: np.ndarray,
    path: Path,
    title: str,
    *,
    targets: dict[str, np.ndarray] | None = None,
) -> None:
    """A PNG: every row in 2-D PCA (coloured by cluster when there are clusters), the
    selection ringed, and target examples (one marker colour per task) when given."""
    require_extra("matplotlib", "plot", "writing a plot").use("Agg")
    import matplotlib.pyplot as plt

    T = list((targets or {}).items())
    both = np.vstack([X] + [v for _, v in T]) if T else X
    P_all = pca_2d(both)  # one projection for pool and targets
    P = P_all[: X.shape[0]]
    fig, ax = plt.subplots(figsize=(7, 6))
    if labels is None:
        ax.scatter(P[:, 0], P[:, 1], s=4, c="#9aa5b1", alpha=0.5, linewidths=0, label="pool")
    else:
        n_clusters = int(labels.max()) + 1 if labels.size else 0
        ax.scatter(
            P[:, 0],
            P[:, 1],
            s=4,
            c=labels % 20,
            cmap="tab20",
            vmin=0,
            vmax=19,
            alpha=0.5,
            linewidths=0,
            label=f"pool ({n_clusters} clusters, by colour)",
        )
    ax.scatter(
        P[chosen, 0],
        P[chosen, 1],
        s=18,
        facecolors="none",
        edgecolors="k",
        linewidths=0.7,
        label=f"selected ({chosen.size:,})",
    )
    start = X.shape[0]
    for i, (name, vecs) in enumerate(T):
        Q = P_all[start : start + vecs.shape[0]]
        start += vecs.shape[0]
        ax.scatter(
            Q[:, 0],
            Q[:, 1],
            s=30,
            marker="*",
            color=plt.get_cmap("tab10")(i % 10),
            label=f"target {name} ({vecs.shape[0]:,})",
        )
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
