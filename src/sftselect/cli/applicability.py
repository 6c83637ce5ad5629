"""Which options of ``sftselect select`` each selector reads, and the refusal of the others.

An option that the chosen selector does not read is refused with one line naming
the option and the selectors it applies to, instead of being accepted and
ignored::

    $ sftselect select data.json -o out.json --selector random -k 100 --drop-echo
    sftselect select: error: --drop-echo applies to --selector length only; --selector random
    does not read it (drop it)

The table is :data:`SELECTOR_OPTIONS`: for each selector, the options it reads
among those that only some selectors read (:data:`RESTRICTED` is their union).
Options every selector reads (``-k``, ``--split``, ``-q``, ``-o``, the input) are
in no row and never refused. An option is "given" when its value differs from
the parser's default (giving an option its default value changes nothing).

**Registering a selector** (one line): add its row, built from the option groups
below and its own options, e.g. ``"facility": EMBEDDING | {"--seed", "--my-flag"}``.
Its own new options then become restricted to it: the other selectors refuse
them. A selector with no row is not checked at all (nothing is refused for
it), so a selector added to ``--selector`` without a row still runs as before.
**Registering an option** another selector also reads: add the flag to that
selector's row (or to a group both use).
"""

from __future__ import annotations

import argparse

from ._common import CliError

__all__ = [
    "DEDUP",
    "EMBEDDING",
    "JUDGE",
    "LENGTH_FILTERS",
    "LENGTH_UNIT",
    "LOGPROB",
    "RESTRICTED",
    "SCORER_MODEL",
    "SELECTOR_OPTIONS",
    "refuse_inapplicable",
    "track_defaults",
]

#: How a row reads its text: the data format, and which turns of a conversation count.
FORMAT = frozenset({"--format", "--response-column"})
#: Measuring a response's length (the length selector; dedup's ``--order length``).
LENGTH_UNIT = frozenset({"--unit", "--turns", "--num-proc"})
#: The length selector's filters and direction.
LENGTH_FILTERS = frozenset(
    {"--min-length", "--max-length", "--keep-empty", "--drop-echo", "--shortest"}
)
#: The LLM judge and its backend (``--selector quality``).
JUDGE = frozenset(
    {
        "--base-url", "--model", "--api-key-env", "--cache", "--max-concurrency", "--rpm",
        "--tpm", "--max-tokens", "--timeout", "--deadline", "--header", "--query", "--prompt",
        "--reask", "--on-parse-error", "--on-request-error", "--dry-run",
        "--usd-per-1m-input", "--usd-per-1m-output", "--judge-scoring", "--top-logprobs",
        "--local-judge",
    }
)  # fmt: skip
#: Embedding the rows, and the picture of the embeddings.
EMBEDDING = frozenset(
    {
        "--embed-model", "--embed-column", "--embed-layer", "--pooling", "--normalize",
        "--embed-text", "--embed-max-length", "--batch-size", "--device", "--embed-cache",
        "--plot",
    }
)  # fmt: skip
SCORE_BOUNDS = frozenset({"--min-score", "--max-score"})
#: A scorer model's options (``--selector deita|reward``).
SCORER_MODEL = SCORE_BOUNDS | {
    "--model", "--model-max-length", "--dtype", "--score-cache", "--batch-size",
    "--device", "--dry-run",
}  # fmt: skip
#: A causal LM's log-probs (``--selector ifd|superfiltering|perplexity``).
LOGPROB = FORMAT | SCORE_BOUNDS | {
    "--model", "--tokenizer", "--context-length", "--dtype", "--score-cache", "--batch-size",
    "--device", "--dry-run", "--ties", "--seed",
}  # fmt: skip
#: What every deduplication filter reads (``--selector exact-dedup|minhash|semdedup``, or
#: in front of another selector with ``--dedup NAME``).
DEDUP = FORMAT | {"--fields", "--keep", "--report", "--seed"}

#: For each selector of ``sftselect select``, the restricted options it reads.
SELECTOR_OPTIONS: dict[str, frozenset[str]] = {
    "length": FORMAT | LENGTH_UNIT | LENGTH_FILTERS | {"--ties", "--seed"},
    "random": frozenset({"--stratify", "--seed"}),
    "column": SCORE_BOUNDS | {"--score-column", "--ties", "--seed"},
    "quality": FORMAT | JUDGE | SCORE_BOUNDS | {"--turns", "--ties", "--seed"},
    "diversity": FORMAT | EMBEDDING
    | {"--seed", "--n-clusters", "--allocation", "--within", "--kmeans-backend", "--cluster-column",
       "--num-gpus"},
    "kcenter": FORMAT | EMBEDDING | {"--seed", "--metric", "--num-gpus"},
    "facility-location": FORMAT | EMBEDDING
    | {"--seed", "--kernel", "--weights-column", "--optimizer", "--refine", "--graph", "--n-neighbors",
       "--num-gpus"},
    "targeted": FORMAT | EMBEDDING | {"--targets", "--num-gpus"},
    "repr-filter": FORMAT | EMBEDDING | LENGTH_UNIT | {"--max-similarity", "--order", "--score-column"},
    "exact-dedup": DEDUP,
    "minhash": DEDUP | {"--threshold", "--ngram", "--num-perm", "--num-proc"},
    "semdedup": DEDUP | EMBEDDING | {"--eps", "--n-clusters", "--kmeans-backend"},
    "deita": SCORER_MODEL | EMBEDDING | {"--quality-model", "--deita-by", "--num-gpus"},
    "reward": SCORER_MODEL | {"--render", "--num-gpus"},
    "ifd": LOGPROB | {"--ifd-limit", "--no-cherry-skips", "--num-gpus"},
    "superfiltering": LOGPROB | {"--ifd-limit", "--num-gpus"},
    "perplexity": LOGPROB | {"--keep", "--unconditioned", "--template", "--num-gpus"},
}  # fmt: skip

#: Every option some selector reads and another does not.
RESTRICTED: frozenset[str] = frozenset().union(*SELECTOR_OPTIONS.values())

_DEFAULTS = "_option_defaults"


def track_defaults(parser: argparse.ArgumentParser) -> None:
    """Record, in the parsed arguments, each restricted option's destination and default,
    so that :func:`refuse_inapplicable` can tell which options were given."""
    known = {
        flag: (action.dest, action.default)
        for action in parser._actions
        for flag in action.option_strings
        if flag in RESTRICTED
    }
    parser.set_defaults(**{_DEFAULTS: known})


def refuse_inapplicable(args: argparse.Namespace) -> None:
    """Raise a one-line :class:`CliError` for a given option that ``args.selector`` does
    not read (see the module docstring); nothing for a selector without a row."""
    reads = SELECTOR_OPTIONS.get(args.selector)
    if reads is None:
        return
    front = getattr(args, "dedup", None)
    if front is not None:  # a filter in front of the selector reads its own options too
        reads = reads | SELECTOR_OPTIONS.get(front, frozenset())
    for flag, (dest, default) in sorted(getattr(args, _DEFAULTS, {}).items()):
        if flag in reads or getattr(args, dest, default) == default:
            continue
        users = [name for name, flags in SELECTOR_OPTIONS.items() if flag in flags]
        which = ", ".join(users[:-1]) + (" or " if len(users) > 1 else "") + users[-1]
        only = " only" if len(users) == 1 else ""
        raise CliError(
            f"{flag} applies to --selector {which}{only}; --selector {args.selector} "
            "does not read it (drop it)"
        )
