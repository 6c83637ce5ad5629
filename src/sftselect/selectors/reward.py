"""RewardSelector: rank rows by a reward model's score of (question, answer).

MoDS (github.com/CASIA-LM/MoDS, ``quality-evaluation/quality-evaluation.py``,
pinned at commit ``7d179bd9783537ce3948207b8c60e556f9fc9780``) scores every
Alpaca record with ``OpenAssistant/reward-model-deberta-v3-large-v2``:
``question = instruction`` (``instruction + "\\n" + input`` when the input is
not empty), ``answer = output``, ``reward = model(**tokenizer(question,
answer)).logits[0]``, and keeps the rows above a threshold. Here the rewards
come from :class:`~sftselect.models.reward.RewardModel` (batched, cached), and
the rule is :class:`~sftselect.selectors.score.ScoreSelector`'s: top ``k``, a
``min_score`` threshold, or both. For chat formats the pair is the last
assistant turn and the user turn before it. A row whose reward cannot be
computed (no response, more tokens than ``max_length``, a non-finite logit) is
NaN, counted in the provenance and warned about; MoDS skips a row whose model
call raises. See ``docs/selectors/reward.md``.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.constraints import K_CONSTRAINTS, InstanceOf, Options
from ..data.formats import FORMAT_CONSTRAINTS, arrow_column, resolve_format, response_view
from ..exceptions import SftSelectWarning
from ..models.reward import RENDERS, RewardModel
from ..models.row_engine import add_counts, row_windows
from .logprob_base import CACHE_DIR, DEVICE, DTYPE, PATH, POSITIVE_INT
from .score import BOUND, TIE_RULES, Scored, ScoreSelector

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = ["DEFAULT_REWARD_MODEL", "RewardSelector", "reward_pairs"]

DEFAULT_REWARD_MODEL = "OpenAssistant/reward-model-deberta-v3-large-v2"


def _strings(arr: Any, n: int) -> list[str]:
    if arr is None:
        return [""] * n
    return ["" if s is None else s for s in arr.to_pylist()]


def reward_pairs(
    dataset: Dataset, fmt: str | Format | None, owner: str
) -> tuple[list[str], list[str], np.ndarray]:
    """``(questions, answers, missing)`` per row, as MoDS builds them (module docstring)."""
    resolved = resolve_format(dataset, fmt, owner)
    view = response_view(dataset, resolved, turns="last", on_invalid="nan", owner=owner)
    n = len(dataset)
    answers = _strings(view.texts, len(view.texts))
    questions = _strings(view.prompts, len(view.texts))
    if view.parents is not None:
        q_rows, a_rows = [""] * n, [""] * n
        for pos, row in enumerate(view.parents.tolist()):
            q_rows[row], a_rows[row] = questions[pos], answers[pos]
        questions, answers = q_rows, a_rows
    elif resolved.input is not None and resolved.input in dataset.column_names:
        inputs = _strings(arrow_column(dataset, resolved.input), n)
        questions = [q if i == "" else q + "\n" + i for q, i in zip(questions, inputs)]
    return questions, answers, view.missing


class RewardSelector(ScoreSelector):
    """Select the rows a reward model scores highest (or above ``min_score``).

    Parameters
    ----------
    model : str, path or RewardModel, default the OpenAssistant DeBERTa reward model
        A sequence-classification checkpoint (loaded on first use with this
        selector's ``render``, ``batch_size``, ``max_length``, ``device``,
        ``dtype``, ``cache_dir`` and ``show_progress``), or a
        :class:`~sftselect.models.reward.RewardModel` built yourself (which
        keeps its own settings).
    k : int, float or None
    render : {"pair", "chat"}, default "pair"
    format : str, Format or None
    min_score, max_score, largest, ties, random_state
        As :class:`~sftselect.selectors.score.ScoreSelector`.
    """

    score_in_actors = True
    scores_on_device = True

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "model": [PATH, InstanceOf(RewardModel, "a RewardModel")],
        "k": [*K_CONSTRAINTS, None],
        "render": [Options(*RENDERS)],
        "batch_size": [POSITIVE_INT],
        "max_length": [POSITIVE_INT, None],
        "device": DEVICE,
        "dtype": DTYPE,
        "cache_dir": CACHE_DIR,
        "format": FORMAT_CONSTRAINTS,
        "min_score": BOUND,
        "max_score": BOUND,
        "largest": ["boolean"],
        "ties": [Options(*TIE_RULES)],
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        model: Any = DEFAULT_REWARD_MODEL,
        k: int | float | None = None,
        *,
        render: str = "pair",
        batch_size: int = 8,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        largest: bool = True,
        ties: str = "stable",
        random_state: Any = None,
        show_progress: bool = True,
    ) -> None:
        self.model = model
        self.render = render
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.format = format
        self.show_progress = show_progress
        super().__init__(
            k,
            min_score=min_score,
            max_score=max_score,
            largest=largest,
            ties=ties,
            random_state=random_state,
        )

    def _engine(self) -> RewardModel:
        if isinstance(self.model, RewardModel):
            return self.model
        # a path or a hub name: the declared constraints allow nothing else
        settings = dict(
            render=self.render,
            batch_size=self.batch_size,
            max_length=self.max_length,
            device=self.device,
            dtype=self.dtype,
            cache_dir=self.cache_dir,
            show_progress=self.show_progress,
        )
        # one engine (one load of the weights) per model and settings, reused across runs
        built = self.__dict__.setdefault("_built_engines", {})
        key = (os.fspath(self.model), repr(sorted(settings.items())))
        if key not in built:
            built[key] = RewardModel(self.model, **settings)
        return built[key]

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        owner = type(self).__name__
        engine = self._engine()
        if len(dataset) == 0:
            return Scored(np.empty(0, dtype=np.float64))
        # the rows are read window_rows at a time: one window's texts are held, and the scores
        scores = np.full(len(dataset), np.nan)
        counts: dict[str, int] = {}
        for window in row_windows(len(dataset), int(engine.window_rows)):
            part = dataset.select(window) if len(window) < len(dataset) else dataset
            questions, answers, missing = reward_pairs(part, self.format, owner)
            keep = np.ones(len(part), dtype=bool)
            keep[missing] = False
            rows = np.flatnonzero(keep)
            out = engine.rewards([questions[i] for i in rows], [answers[i] for i in rows])
            scores[window.start + rows] = out.values[:, 0]
            add_counts(counts, out.counts())
            add_counts(counts, {"no_response": int(missing.size)})
        bad = int(np.isnan(scores).sum())
        if bad:
            warnings.warn(
                f"{owner}: {bad} of {len(scores)} rows could not be scored (no response: "
                f"{counts['no_response']}, longer than max_length: {counts['too_long']}, "
                f"empty: {counts['empty']}, non-finite: {counts['non_finite']}); they are NaN "
                "and never selected.",
                SftSelectWarning,
                stacklevel=3,
            )
        return Scored(scores, extra={"reward": counts})

    def _score(self, dataset: Dataset) -> np.ndarray:
        return self._score_with_rules(dataset).scores
