"""QualitySelector: an LLM judge rates each example on a Likert scale (AlpaGasus).

AlpaGasus (Chen et al., 2024) asks ChatGPT to rate every Alpaca example for
accuracy on a 0-5 scale and keeps those rated at least 4.5; *Long Is More for
Alignment* uses 1,000 of them (the 5.0s, plus a uniform sample of the 4.5s) as
its quality baseline: ``QualitySelector(judge, k=1000, min_score=4.5)`` with
the default ``ties="random"`` and a seed.

The judge is any chat backend (:mod:`sftselect.backends`): an OpenAI-compatible
server, a local transformers model, or a Python callable. Replies go through a
cache (a :class:`~sftselect.backends.ReplyCache` file: a second run sends
nothing, a killed run resumes), and are parsed strictly
(:func:`sftselect.scoring.rating.parse_rating`): an unparsable reply scores NaN,
is counted and reported, and is never selected (or raises, on request).

With ``scoring="expected"`` a row's score is G-Eval's expected rating instead:
the judge's probabilities of the scale's tokens at the rating it wrote,
weighted by their scores (:mod:`sftselect.selectors.quality_expected`), from an
endpoint that returns log-probabilities.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from ..backends.base import ChatReply, ChatRequest
from ..backends.cache import MemoryCache, ReplyCache, as_reply_store
from ..backends.estimate import CostEstimate, estimate_requests
from ..backends.plans import cached_result, plan_digest, remember_plan
from ..backends.runner import failure_message, run_requests
from ..core.validation import param_error
from ..data.formats import Format, resolve_format, response_view
from ..exceptions import JudgeFailureWarning, JudgeParseError, JudgeRequestError
from ..prompts import RatingPrompt, rating_prompt
from ..scoring.rating import parse_rating
from .quality_expected import (
    EXPECTED_MAX_TOKENS,
    apply_expected,
    check_expected,
    run_probed,
    warn_expected_failures,
)
from .quality_params import QUALITY_CONSTRAINTS
from .ratings import Ratings, merge_reports
from .score import Scored, ScoreSelector

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["REASK_MESSAGE", "QualitySelector", "Ratings"]

REASK_MESSAGE = (
    "Your reply did not begin with a score. Reply with only the score, a number from "
    "{lo:g} to {hi:g}, on the first line."
)


class QualitySelector(ScoreSelector):
    """Select by an LLM judge's rating of each (instruction, input, response).

    Parameters
    ----------
    judge : chat backend
        An object with ``identity`` and ``async chat(request)`` (see
        :mod:`sftselect.backends`).
    k : int, float or None
        Rows to keep; None keeps every row within ``min_score``/``max_score``.
    min_score, max_score : float or None
        Inclusive bounds on the rating (AlpaGasus: ``min_score=4.5``).
    prompt : str or RatingPrompt, default "alpagasus"
        A preset (``"alpagasus"``, ``"alpagasus_helpfulness"``) or a template.
    format, turns
        The data format (detected when None) and, for conversations, which
        assistant turn is rated (``"last"`` or ``"first"``).
    cache : ReplyCache, MemoryCache, path or None
        Where replies are kept. A path opens a SQLite :class:`ReplyCache`.
        None keeps them in memory for the life of this selector object (so
        ``select`` then ``run`` pays once; a :meth:`clone` or a copy sent to
        another process starts empty).
    max_concurrency : int, default 64
        Requests in flight at once.
    max_tokens, temperature : int, float or None
        Decoding; None takes the preset's (AlpaGasus: 256 tokens, 0.0), except
        that ``scoring="expected"`` caps the preset's tokens at 16.
    reask : int, default 0
        Times to ask again, in the same conversation, when a reply has no score.
    on_parse_error : {"nan", "raise"}, default "nan"
        An unparsable reply scores NaN (counted, reported, never selected), or
        raises :class:`~sftselect.exceptions.JudgeParseError` after the run.
    scoring : {"rating", "expected"}, default "rating"
        ``"rating"``: the rating the judge wrote, parsed. ``"expected"``: G-Eval's
        expected score, the sum of score x probability over the scale's integer
        tokens at the position of the rating the judge wrote, renormalised over
        the probability found there (see :mod:`sftselect.scoring.expected`);
        needs a judge that returns log-probabilities: the first reply is checked
        before the others are paid for, and a judge without them stops the run
        with one :class:`~sftselect.exceptions.JudgeLogprobsError` line.
    top_logprobs : int, default 20
        With ``scoring="expected"``: the alternatives asked for per token (0 to
        20, OpenAI's limit); the scale's tokens outside them count as
        probability 0 (the mass covered is recorded per row).
    on_request_error : {"raise", "nan"}, default "raise"
        A request that fails after the backend's retries raises
        :class:`~sftselect.exceptions.JudgeRequestError` after the run (the
        replies received are cached, so a re-run resumes), or scores NaN.
    ties : {"random", "stable"}, default "random"
        Equal ratings at the cut are sampled uniformly with the seed, as
        AlpaGasus sampled among the 4.5s.
    random_state : int, numpy Generator or None
    show_progress : bool, default False
    """

    #: Each engine worker builds the judge (its HTTP clients) once and shares the
    #: reply-cache file: Ray rates in a few actors on the driver's node.
    score_in_actors = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = QUALITY_CONSTRAINTS

    def __init__(
        self,
        judge: Any,
        k: int | float | None = None,
        *,
        min_score: float | None = None,
        max_score: float | None = None,
        prompt: str | RatingPrompt = "alpagasus",
        format: str | Format | None = None,
        turns: str = "last",
        cache: Any = None,
        max_concurrency: int = 64,
        max_tokens: int | None = None,
        temperature: float | None = None,
        reask: int = 0,
        on_parse_error: str = "nan",
        on_request_error: str = "raise",
        scoring: str = "rating",
        top_logprobs: int = 20,
        ties: str = "random",
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.judge = judge
        self.k = k
        self.min_score = min_score
        self.max_score = max_score
        self.prompt = prompt
        self.format = format
        self.turns = turns
        self.cache = cache
        self.max_concurrency = max_concurrency
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.reask = reask
        self.on_parse_error = on_parse_error
        self.on_request_error = on_request_error
        self.scoring = scoring
        self.top_logprobs = top_logprobs
        self.largest = True
        self.ties = ties
        self.random_state = random_state
        self.show_progress = show_progress

    # -- building requests -------------------------------------------------
    def _prompt(self) -> RatingPrompt:
        return rating_prompt(self.prompt)

    def _decoding(self, prompt: RatingPrompt) -> dict[str, Any]:
        from ..prompts import load_presets

        preset = load_presets("rating").get(self.prompt) if isinstance(self.prompt, str) else None
        max_tokens = (
            self.max_tokens
            if self.max_tokens is not None
            else (preset["max_tokens"] if preset else 256)
        )
        temperature = (
            self.temperature
            if self.temperature is not None
            else (preset["temperature"] if preset else 0.0)
        )
        top_p = preset["top_p"] if preset else None
        owner = type(self).__name__
        decoding = {"max_tokens": max_tokens, "temperature": float(temperature), "top_p": top_p}
        if self.scoring == "expected":
            decoding["top_logprobs"] = check_expected(owner, self.top_logprobs, prompt.scale)
            if self.max_tokens is None:  # every token's alternatives travel and are cached
                decoding["max_tokens"] = min(max_tokens, EXPECTED_MAX_TOKENS)
        return decoding

    def _fields(self, dataset: Dataset) -> tuple[list[str], list[str], list[str], np.ndarray]:
        """Instruction, input and response per row, and the rows with no response."""
        owner = type(self).__name__
        fmt = resolve_format(dataset, self.format, owner)
        view = response_view(dataset, fmt, turns=self.turns, on_invalid="nan", owner=owner)
        n = len(dataset)
        responses = [""] * n
        instructions = [""] * n
        rows = np.arange(len(view.texts)) if view.parents is None else view.parents
        texts = view.texts.to_pylist()
        prompts = view.prompts.to_pylist() if view.prompts is not None else [None] * len(texts)
        for row, text, instr in zip(rows.tolist(), texts, prompts):
            responses[row] = text
            instructions[row] = instr or ""
        inputs = [""] * n
        if not fmt.is_chat and fmt.input is not None and fmt.input in dataset.column_names:
            col = dataset.with_format("arrow")[fmt.input]
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                inputs = [x or "" for x in col.to_pylist()]
        return instructions, inputs, responses, view.missing

    def _inputs(
        self, dataset: Dataset
    ) -> tuple[RatingPrompt, dict[str, Any], np.ndarray, dict[str, list[str]]]:
        """The prompt, decoding, rows that have a response to rate, and the fields (the
        parameters validated first: :meth:`rate`, :meth:`requests` and :meth:`estimate`
        start here)."""
        self._validate_params()
        prompt = self._prompt()
        decoding = self._decoding(prompt)
        instructions, inputs, responses, missing = self._fields(dataset)
        rows = np.setdiff1d(np.arange(len(dataset)), missing)
        fields = {"instruction": instructions, "input": inputs, "response": responses}
        return prompt, decoding, rows, fields

    @staticmethod
    def _render(
        prompt: RatingPrompt,
        decoding: dict[str, Any],
        rows: np.ndarray,
        fields: dict[str, list[str]],
    ) -> list[ChatRequest]:
        """One request per row in ``rows``: the template filled with its fields."""
        head = (("system", prompt.system),) if prompt.system else ()
        fill = prompt.user.format
        instructions, inputs, responses = fields["instruction"], fields["input"], fields["response"]
        max_tokens, temperature, top_p, top_logprobs = (
            decoding["max_tokens"],
            decoding["temperature"],
            decoding["top_p"],
            decoding.get("top_logprobs"),
        )
        build = ChatRequest.from_checked_parts
        return [
            build(
                (
                    *head,
                    (
                        "user",
                        fill(instruction=instructions[i], input=inputs[i], response=responses[i]),
                    ),
                ),
                max_tokens,
                temperature,
                top_p,
                top_logprobs,
            )
            for i in rows.tolist()
        ]

    def _plan(self, dataset: Dataset) -> tuple[np.ndarray, list[ChatRequest]]:
        """The rows that have a response to rate, and their requests."""
        prompt, decoding, rows, fields = self._inputs(dataset)
        return rows, self._render(prompt, decoding, rows, fields)

    def _digest(
        self,
        prompt: RatingPrompt,
        decoding: dict[str, Any],
        rows: np.ndarray,
        fields: dict[str, list[str]],
    ) -> str | None:
        """The plan digest of these requests (None for a judge with no identity:
        the runner then reports it)."""
        identity = getattr(self.judge, "identity", None)
        if not isinstance(identity, str) or not identity:
            return None
        template = {
            "renderer": "QualitySelector/v1",
            "system": prompt.system,
            "user": prompt.user,
            "version": prompt.version,
            **decoding,
        }
        return plan_digest(identity, template, fields, rows)

    def requests(self, dataset: Dataset) -> list[ChatRequest]:
        """The rating requests that would be sent (one per row that has a response)."""
        return self._plan(dataset)[1]

    def check_portable(self) -> None:
        """Refuse ``cache=None`` or a :class:`~sftselect.backends.MemoryCache` when the
        selector is rebuilt in other processes: each worker would get its own empty
        copy, and a restarted job would pay again. ``cache`` must name one SQLite
        file (a path or a :class:`~sftselect.backends.ReplyCache`) that every
        worker shares."""
        if not isinstance(self.cache, (str, os.PathLike, ReplyCache)):
            raise param_error(
                type(self).__name__,
                "cache",
                "a path or a ReplyCache on Ray (one SQLite file that every rating worker "
                "shares, so a restarted job does not pay twice)",
                self.cache,
            )

    def _store(self) -> Any:
        if self.cache is None:
            # One in-memory store for this object's life, so select() then run() pays once.
            store = self.__dict__.get("_memory_cache")
            if store is None:
                store = self.__dict__["_memory_cache"] = MemoryCache()
            return store
        return as_reply_store(self.cache, type(self).__name__)

    def __getstate__(self) -> dict[str, Any]:
        """The parameters; the in-memory replies stay in this process."""
        state = self.__dict__.copy()
        state.pop("_memory_cache", None)
        return state

    # -- rating --------------------------------------------------------------
    def rate(self, dataset: Dataset) -> Ratings:
        """Rate every row: scores (NaN where none), raw replies, reasons and a report."""
        owner = type(self).__name__
        reask, concurrency = int(self.reask), int(self.max_concurrency)
        prompt, decoding, rows, fields = self._inputs(dataset)
        store = self._store()
        digest = self._digest(prompt, decoding, rows, fields)
        # A re-run whose every reply is cached reads them through the stored plan
        # and renders nothing; any other run builds and sends the requests.
        result = cached_result(self.judge, store, digest) if digest else None
        requests: list[ChatRequest] | None = None
        top = decoding.get("top_logprobs")
        if result is None:
            requests = self._render(prompt, decoding, rows, fields)
            result = run_probed(
                self.judge, requests, store, owner=owner, top_logprobs=top,
                max_concurrency=concurrency, show_progress=bool(self.show_progress),
            )  # fmt: skip
            if digest:
                remember_plan(store, digest, result.keys)
        report = result.report
        replies: list[ChatReply | None] = list(result.replies)
        parsed = [parse_rating(r.text, prompt.scale) if r is not None else None for r in replies]
        reasked = 0
        for _ in range(reask):
            todo = [i for i, p in enumerate(parsed) if p is not None and p.value is None]
            if not todo:
                break
            if requests is None:
                requests = self._render(prompt, decoding, rows, fields)
            follow = [self._reask_request(requests[i], replies[i], prompt) for i in todo]
            again = run_requests(
                self.judge,
                follow,
                cache=store,
                max_concurrency=concurrency,
                show_progress=bool(self.show_progress),
                desc="re-asking",
            )
            merge_reports(report, again.report)
            reasked += len(todo)
            for i, reply in zip(todo, again.replies):
                if reply is not None:
                    p = parse_rating(reply.text, prompt.scale)
                    if p.value is not None:
                        replies[i], parsed[i] = reply, p
        n = len(dataset)
        scores = np.full(n, np.nan)
        reasons = ["no response to rate"] * n
        texts: list[str | None] = [None] * n
        for row, p, reply, err in zip(rows.tolist(), parsed, replies, result.errors):
            if p is None:
                reasons[row] = f"request failed: {err}"
                continue
            reasons[row] = p.reason
            texts[row] = reply.text if reply is not None else None
            if p.value is not None:
                scores[row] = p.value
        request_failures = sum(p is None for p in parsed)
        parse_failures = sum(p is not None and p.value is None for p in parsed)
        ratings = Ratings(scores, texts, reasons, report, parse_failures, request_failures, reasked)
        if top is not None:
            expected = apply_expected(
                ratings, rows, parsed, replies, prompt.scale, self.judge, top, owner
            )
        if request_failures and self.on_request_error == "raise":
            raise JudgeRequestError(
                failure_message(
                    report,
                    request_failures,
                    len(rows),
                    "rating requests",
                    "on_request_error='nan' (command line: --on-request-error nan)",
                )
            )
        if (parse_failures and self.on_parse_error == "nan") or request_failures:
            first = next(
                i for i, p in enumerate(parsed) if p is None or p.value is None
            )  # a failed request (p None) or an unparsable reply
            what = "request failed" if parsed[first] is None else parsed[first].reason
            warnings.warn(
                f"{owner}: {parse_failures} of {len(rows)} judge replies could not be parsed "
                f"and {request_failures} requests failed; those rows score NaN and are never "
                f"selected (first: row {int(rows[first])}, {what}). Replies are cached: "
                "reask=N asks again; Ratings.reasons and the provenance list them.",
                JudgeFailureWarning,
                stacklevel=3,
            )
        if top is not None:
            warn_expected_failures(owner, expected, len(rows))
        if parse_failures and self.on_parse_error == "raise":
            bad = [i for i, p in enumerate(parsed) if p is not None and p.value is None]
            example = (replies[bad[0]].text or "")[:80] if replies[bad[0]] is not None else ""
            raise JudgeParseError(
                f"{parse_failures} of {len(rows)} judge replies could not be parsed "
                f"(first: row {int(rows[bad[0]])}, {parsed[bad[0]].reason}: {example!r}). "
                "They are cached with the raw replies; reask=N (command line: --reask N) asks "
                "again, on_parse_error='nan' (--on-parse-error nan) keeps them as NaN."
            )
        return ratings

    def _reask_request(
        self, request: ChatRequest, reply: ChatReply | None, prompt: RatingPrompt
    ) -> ChatRequest:
        lo, hi = prompt.scale
        msgs = [
            *request.message_dicts(),
            {"role": "assistant", "content": reply.text if reply else ""},
            {"role": "user", "content": REASK_MESSAGE.format(lo=lo, hi=hi)},
        ]
        return ChatRequest.from_messages(
            msgs,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_logprobs=request.top_logprobs,
        )

    def _score(self, dataset: Dataset) -> np.ndarray:
        return self.rate(dataset).scores

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        ratings = self.rate(dataset)
        prompt = self._prompt()
        extra = {
            "judge": getattr(self.judge, "identity", repr(self.judge)),
            "prompt_version": prompt.version,
            "rating": ratings.summary(),
        }
        return Scored(ratings.scores, None, extra)

    # -- dry run -------------------------------------------------------------
    def estimate(
        self,
        dataset: Dataset,
        *,
        count_tokens: Any = None,
        usd_per_1m_input: float | None = None,
        usd_per_1m_output: float | None = None,
    ) -> CostEstimate:
        """Count what would be sent, without sending anything.

        ``count_tokens`` is a ``str -> int`` function (default: tiktoken's
        ``cl100k_base`` when installed, else characters / 4, labelled as such).
        The cost is an upper bound for one pass: every request is charged
        ``max_tokens`` output tokens. With ``reask=N``, each unparsable reply can
        add up to ``N`` follow-up requests, not counted here. Requests already
        in the cache are left out (they cost nothing).
        """
        return estimate_requests(
            self.requests(dataset),
            self.judge.identity,
            self._store(),
            rows=len(dataset),
            count_tokens=count_tokens,
            usd_per_1m_input=usd_per_1m_input,
            usd_per_1m_output=usd_per_1m_output,
            owner=f"{type(self).__name__}.estimate",
        )
