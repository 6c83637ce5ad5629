"""Reports people can read: a Markdown table and stacked win/tie/lose bars.

Both take the saved result document (``PairwiseResult.to_dict()`` or
:func:`load_result` of the JSON file), so ``sftselect report OUT.json``
renders them without judging anything again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.extras import require_extra
from ..exceptions import DataFormatError

__all__ = ["WTL_COLORS", "load_result", "markdown_table", "plot_wtl"]

#: Bar colours: win, tie, lose.
WTL_COLORS = ("#4c9a5f", "#b8b8b8", "#c8553d")

_REQUIRED = ("model_a", "model_b", "judge", "protocol", "summary")


#: The ``format`` of the document PairwiseResult.save writes and load_result reads.
RESULT_FORMAT = "sftselect-pairwise-v1"


def _kind_of(record: Any) -> str:
    """What a record's fields suggest it is, for an error message."""
    if isinstance(record, dict):
        keys = set(record)
        if {"prompt", "answer"} <= keys:
            return ", as in an answers file of `sftselect generate`: `sftselect judge` compares two of them"
        if {"instruction", "output"} <= keys:
            return ", as in AlpacaEval model outputs: `sftselect judge` compares two of them"
    return ""


def _describe(doc: Any) -> str:
    """What a JSON document that is not a result holds."""
    if isinstance(doc, dict):
        if "format" in doc:
            return f"its 'format' is {doc['format']!r}"
        return f"it is an object with no 'format' field (fields: {sorted(doc)[:8]}){_kind_of(doc)}"
    if isinstance(doc, list):
        first = doc[0] if doc else None
        fields = f", the first with fields {sorted(first)[:8]}" if isinstance(first, dict) else ""
        items = "1 item" if len(doc) == 1 else f"{len(doc)} items"
        return f"it is a JSON array of {items}{fields}{_kind_of(first)}"
    return f"it holds a JSON {type(doc).__name__}"


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a result file written by ``PairwiseResult.save`` / ``sftselect judge``."""
    p = Path(path)
    expected = (
        f"not a pairwise result (`sftselect report` reads the JSON file that `sftselect judge "
        f"-o` or PairwiseResult.save writes, with 'format': {RESULT_FORMAT!r})"
    )
    text = p.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        first_line = text.lstrip().split("\n", 1)[0]
        try:
            first = json.loads(first_line) if exc.msg == "Extra data" else None
        except json.JSONDecodeError:
            first = None
        if isinstance(first, dict):  # JSON Lines: one object a line
            raise DataFormatError(
                f"{p}: {expected}: it is JSON Lines, the first record with fields "
                f"{sorted(first)[:8]}{_kind_of(first)}."
            ) from None
        raise DataFormatError(f"{p}:{exc.lineno}: malformed JSON ({exc.msg}).") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT:
        raise DataFormatError(f"{p}: {expected}: {_describe(doc)}.")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise DataFormatError(f"{p}: the result has no {missing} field(s).")
    return doc


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _rows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    summary = doc["summary"]
    return [*summary["by_testset"].items(), ("overall", summary["overall"])]


def markdown_table(doc: dict[str, Any]) -> str:
    """The summary per test set and overall, as a Markdown table with a short header."""
    proto = doc["protocol"]
    boot = doc.get("bootstrap") or {}
    level = f"{boot['confidence']:.0%}" if boot.get("confidence") else "95%"
    lines = [
        f"**{doc['model_a']}** (A) vs **{doc['model_b']}** (B); judge `{doc['judge']}`, "
        f"protocol `{proto['name']}` ({proto['version']}), both answer orders.",
        "",
        f"| test set | pairs | scored | win | tie | lose | win score [{level} CI] | "
        "FastChat W/T/L | (W+T/2)/N | position flips | parse failures | request failures | "
        "mean words A | mean words B |",
        "|---|" + "---:|" * 13,
    ]
    for name, g in _rows(doc):
        ci = g.get("win_score_ci")
        ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        fc = g["fastchat"]
        flips = g["position_flips"]
        rate = g["position_flip_rate"]
        label = f"**{name}**" if name == "overall" else name
        lines.append(
            f"| {label} | {g['pairs']} | {g['scored']} | {g['win']} | {g['tie']} | {g['lose']} | "
            f"{_num(g['win_score'])}{ci_text} | {fc['win']}/{fc['tie']}/{fc['lose']} | "
            f"{_num(fc['win_rate_adjusted'])} | {flips} ({_num(rate and rate * 100, 1)}%) | "
            f"{g['parse_failures']} | {g['request_failures']} | {_num(g['mean_words_a'], 1)} | "
            f"{_num(g['mean_words_b'], 1)} |"
        )
    lines += [
        "",
        "Win score = (W - L) / N + 1 with the paper's rule (win+win, win+tie, tie+win = win; "
        "tie+tie or win+lose = tie); N = W + T + L excludes pairs with an unparsable reply "
        "(parse failures) or a failed request. FastChat's rule counts a verdict only when both "
        "orders agree.",
    ]
    return "\n".join(lines) + "\n"


def plot_wtl(doc: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Stacked horizontal win/tie/lose bars per test set and overall, as a PNG.

    Each bar shows the share of the scored pairs (counts written inside), as
    in Figure 1 of *Long Is More for Alignment*; test sets with no scored pair
    are drawn empty and labelled.
    """
    require_extra("matplotlib", "plot", "plot_wtl")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot, no global backend
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = _rows(doc)
    fig = Figure(figsize=(8.0, 0.55 * len(rows) + 1.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = []
    for y, (name, g) in enumerate(reversed(rows)):
        n = g["scored"]
        labels.append(f"{name} (n={n})" if n else f"{name} (none scored)")
        left = 0.0
        for count, color in zip((g["win"], g["tie"], g["lose"]), WTL_COLORS):
            share = count / n if n else 0.0
            ax.barh(y, share, left=left, color=color, edgecolor="white", height=0.7)
            if share >= 0.06:
                ax.text(left + share / 2, y, str(count), ha="center", va="center", fontsize=8)
            left += share
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of scored pairs")
    proto = doc["protocol"]
    ax.set_title(
        f"{doc['model_a']} vs {doc['model_b']} (judge {doc['judge']}, {proto['version']})",
        fontsize=9,
    )
    handles = [Patch(color=c, label=lab) for c, lab in zip(WTL_COLORS, ("win", "tie", "lose"))]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=120)
    return out
