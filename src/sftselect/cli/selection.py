"""``sftselect select``, ``score`` and ``stats``: choose rows, score every
row, describe the length distribution.

The embedding selectors (``--selector diversity``, ``kcenter``, ``repr-filter``)
embed the rows once here (``--embed-model`` through ``HFEmbedder``, or
``--embed-column``), hand the vectors to the selector as
``PrecomputedEmbeddings`` under the model's identity, and reuse them for the
``--plot`` picture (PCA of the embeddings, clusters and selection)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.provenance import provenance_path
from ..core.row_tables import row_table_path
from ..data.io import OUTPUT_SUFFIXES
from ..data.sample import SAMPLES
from ._common import (
    CliError,
    add_backend_options,
    check_price_flags,
    format_arg,
    info,
    length_scorer,
    parse_k,
    rating_line,
    refuse_overwriting_inputs,
    stamp_record,
)
from .applicability import refuse_inapplicable, track_defaults
from .coverage import COVERAGE_SELECTORS, add_coverage_options, coverage_plot
from .dedup import (
    DEDUP_SELECTORS,
    add_dedup_options,
    build_with_dedup,
    check_dedup_args,
    dedup_on_ray,
    dedup_report,
    rename_deprecated_selector,
)
from .distributed import add_engine_options, check_engine_options, run_on_ray
from .embedding import (
    EMBED_SELECTORS,
    add_embed_options,
    check_embed_args,
    embed,
    embedding_selector,
    plot_title,
)
from .embedding_ray import described_selector, run_embedded_on_ray
from .judge_scoring import add_judge_scoring_options, expected_columns, judge_scoring_kwargs
from .local_judge import add_local_judge_option, judge_from_args
from .logprob import (
    LOGPROB_SELECTORS,
    add_logprob_options,
    logprob_dry_run,
    logprob_scores,
    logprob_selector,
)
from .model_scores import (
    MODEL_SELECTORS,
    add_model_score_options,
    model_dry_run,
    model_selector,
    score_with_model,
)
from .plots import plot_embedding

__all__ = ["add_length_options", "load_input", "register"]

#: The INPUT argument, as ``load_data`` reads it.
INPUT_HELP = (
    "the data: a .json, .jsonl or .parquet file, a saved Dataset folder, "
    + ", ".join(f"sample:{name}" for name in sorted(SAMPLES))
    + " (a sample bundled with sftselect), or a Hugging Face hub name"
)


def add_length_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unit",
        default="nltk_words",
        help="length unit: chars, words, nltk_words (the paper's; default), "
        "tiktoken:<encoding>, hf:<tokenizer path>",
    )
    p.add_argument(
        "--format",
        choices=["alpaca", "dolly", "sharegpt", "openai"],
        default=None,
        help="data format (default: detected from the columns)",
    )
    p.add_argument(
        "--response-column",
        default=None,
        help="read the response from this column (a custom flat format)",
    )
    p.add_argument(
        "--turns",
        choices=["last", "first", "sum", "max", "mean"],
        default="last",
        help="which assistant turns of a conversation count (default: last)",
    )
    p.add_argument("--num-proc", type=int, default=1, help="processes for tokenizer units")
    p.add_argument("--split", default="train", help="split to read from a hub name or DatasetDict")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``select``, ``score`` and ``stats`` to the ``sftselect`` parser."""

    sel = sub.add_parser("select", help="select a subset and write it with its provenance")
    sel.add_argument("input", help=INPUT_HELP)
    sel.add_argument(
        "-o", "--output", required=True, help="output path (.json, .jsonl, .parquet, or a folder)"
    )
    sel.add_argument(
        "--selector",
        choices=[
            "length",
            "random",
            "column",
            "quality",
            *EMBED_SELECTORS,
            *DEDUP_SELECTORS,
            *MODEL_SELECTORS,
            *LOGPROB_SELECTORS,
            "dedup",
        ],
        default="length",
        help="length: the longest responses; random; column: by --score-column; quality: an "
        "LLM judge's rating; diversity, kcenter, repr-filter (DEITA's filter; 'dedup' is its "
        "deprecated name), facility-location, targeted: on embeddings; exact-dedup, minhash, "
        "semdedup: one row of each duplicate group; deita, reward: a scorer model (--model); "
        "ifd, superfiltering, perplexity: a causal LM's log-probs (default: %(default)s)",
    )
    sel.add_argument(
        "-k",
        type=parse_k,
        default=None,
        help="rows to keep: a count (1000, 1e9) or a fraction in (0, 1) (length selector: "
        "1000 unless --min-length/--max-length decide)",
    )
    sel.add_argument(
        "--seed", type=int, default=None, help="random seed (random selector, random ties)"
    )
    add_length_options(sel)
    sel.add_argument("--min-length", type=int, default=None, help="never select shorter responses")
    sel.add_argument("--max-length", type=int, default=None, help="never select longer responses")
    sel.add_argument("--keep-empty", action="store_true", help="allow empty responses")
    sel.add_argument(
        "--drop-echo",
        action="store_true",
        help="never select a response that repeats its instruction",
    )
    sel.add_argument("--shortest", action="store_true", help="select the shortest instead")
    sel.add_argument(
        "--ties",
        choices=["stable", "random"],
        default=None,
        help="tie rule at the cut (default: stable; quality: random, as AlpaGasus)",
    )
    sel.add_argument("--stratify", default=None, help="random selector: stratify by this column")
    sel.add_argument("--score-column", default=None, help="column selector: the numeric column")
    sel.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="column/quality: keep score >= this (quality: 4.5 unless -k or --max-score)",
    )
    sel.add_argument(
        "--max-score", type=float, default=None, help="column/quality: keep score <= this"
    )
    sel.add_argument("-q", "--quiet", action="store_true")
    _add_judge_options(sel)
    add_engine_options(sel)
    add_embed_options(sel)
    add_coverage_options(sel)
    add_dedup_options(sel)
    add_model_score_options(sel)
    add_logprob_options(sel)
    track_defaults(sel)  # after every option: which ones only some selectors read
    sel.set_defaults(handler=_cmd_select)

    sc = sub.add_parser("score", help="write every row with its score column")
    sc.add_argument("input", help=INPUT_HELP)
    sc.add_argument(
        "-o", "--output", required=True, help="output path (.json, .jsonl, .parquet, or a folder)"
    )
    sc.add_argument(
        "--selector",
        choices=["quality", "length", *MODEL_SELECTORS, *LOGPROB_SELECTORS],
        default="quality",
        help="quality: an LLM judge's rating (column quality_score); length: the response "
        "length (column response_length); deita, reward: a scorer model's score (column "
        "deita_<by>_score, reward_score); ifd, superfiltering (column ifd), perplexity "
        "(column perplexity) (default: %(default)s)",
    )
    add_length_options(sc)
    sc.add_argument(
        "--keep-replies",
        action="store_true",
        help="quality: also write the raw judge reply and the parse reason",
    )
    sc.add_argument("-q", "--quiet", action="store_true")
    _add_judge_options(sc)
    add_model_score_options(sc)
    add_logprob_options(sc)
    track_defaults(sc)  # as for select: an option the scorer does not read is refused
    sc.set_defaults(handler=_cmd_score)


def _add_judge_options(p: argparse.ArgumentParser) -> None:
    g = add_backend_options(p, "LLM judge (--selector quality)")
    g.add_argument("--prompt", default="alpagasus", choices=["alpagasus", "alpagasus_helpfulness"])
    g.add_argument("--reask", type=int, default=0, help="ask again when a reply has no score")
    add_judge_scoring_options(g)
    add_local_judge_option(g)
    g.add_argument(
        "--on-parse-error",
        choices=["nan", "raise"],
        default="nan",
        help="a reply with no score: NaN (null in the output, counted) or stop (default: nan)",
    )
    g.add_argument(
        "--on-request-error",
        choices=["raise", "nan"],
        default="raise",
        help="a request that failed after retries: stop (replies so far are cached) or "
        "NaN (default: raise)",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="count requests and prompt tokens, estimate the cost, send nothing",
    )
    g.add_argument("--usd-per-1m-input", type=float, default=None, help="price, for --dry-run")
    g.add_argument("--usd-per-1m-output", type=float, default=None, help="price, for --dry-run")


def load_input(args: argparse.Namespace):
    from ..data.io import load_data

    t0 = time.perf_counter()
    dataset = load_data(args.input, split=args.split)
    info(
        f"loaded {len(dataset):,} rows from {args.input} in {time.perf_counter() - t0:.1f}s",
        args.quiet,
    )
    return dataset


def _build_selector(args: argparse.Namespace):
    from ..selectors import ColumnScoreSelector, LengthSelector, RandomSelector

    if args.selector in MODEL_SELECTORS:
        return model_selector(args)
    if args.selector in LOGPROB_SELECTORS:
        return logprob_selector(args)
    if args.selector == "length":
        k = args.k
        if k is None and args.min_length is None and args.max_length is None:
            k = 1000  # LengthSelector's default, the paper's 1k
        return LengthSelector(
            k=k,
            unit=args.unit,
            format=format_arg(args),
            turns=args.turns,
            min_length=args.min_length,
            max_length=args.max_length,
            drop_empty=not args.keep_empty,
            drop_echo=args.drop_echo,
            largest=not args.shortest,
            ties=args.ties or "stable",
            num_proc=args.num_proc,
            random_state=args.seed,
            show_progress=not args.quiet,
        )
    if args.selector == "random":
        if args.k is None:
            raise CliError("--selector random needs -k")
        return RandomSelector(k=args.k, random_state=args.seed, stratify=args.stratify)
    if args.selector == "quality":
        min_score = args.min_score
        if args.k is None and min_score is None and args.max_score is None:
            min_score = 4.5  # AlpaGasus's threshold
        return _quality_selector(
            args,
            k=args.k,
            min_score=min_score,
            max_score=args.max_score,
            ties=args.ties or "random",
            seed=args.seed,
        )
    if args.score_column is None:
        raise CliError("--selector column needs --score-column")
    return ColumnScoreSelector(
        args.score_column,
        k=args.k,
        min_score=args.min_score,
        max_score=args.max_score,
        ties=args.ties or "stable",
        random_state=args.seed,
    )


def _quality_selector(
    args: argparse.Namespace, *, k: Any, min_score: Any, max_score: Any, ties: str, seed: Any
):
    from ..selectors.quality import QualitySelector

    judge = judge_from_args(args, "--selector quality")
    check_price_flags(args)
    return QualitySelector(
        judge,
        k,
        min_score=min_score,
        max_score=max_score,
        prompt=args.prompt,
        format=format_arg(args),
        turns=args.turns,  # the selector refuses sum/max/mean, which a rating has no use for
        cache=args.cache,
        max_concurrency=args.max_concurrency,
        max_tokens=args.max_tokens,
        reask=args.reask,
        on_parse_error=args.on_parse_error,
        on_request_error=args.on_request_error,
        **judge_scoring_kwargs(args),
        ties=ties,
        random_state=seed,
        show_progress=not args.quiet,
    )


def _dry_run(args: argparse.Namespace, selector: Any, dataset: Any) -> int:
    estimate = selector.estimate(
        dataset,
        usd_per_1m_input=args.usd_per_1m_input,
        usd_per_1m_output=args.usd_per_1m_output,
    )
    print(estimate.summary())
    return 0


def _refuse_overwriting(args: argparse.Namespace, output: Path, provenance: bool) -> None:
    """Refuse an output, provenance record, picture or reply cache that is the input."""
    cache = args.cache if args.selector == "quality" and not args.dry_run else None
    refuse_overwriting_inputs(
        {"INPUT": args.input},
        [
            ("-o", "the output", output),
            ("-o", "the provenance record", provenance_path(output) if provenance else None),
            ("-o", "the removed-rows table", row_table_path(output, "removed")),
            ("-o", "the per-row table", row_table_path(output, "rows")),
            ("--plot", "the picture", getattr(args, "plot", None)),
            ("--cache", "the reply cache", cache),
        ],
        replaced_folders=[] if output.suffix.lower() in OUTPUT_SUFFIXES else [output],
    )


def _cmd_select(args: argparse.Namespace) -> int:
    from ..core.provenance import write_json_atomic
    from ..core.row_tables import write_row_tables
    from ..data.io import check_output_path, save_data

    rename_deprecated_selector(args)
    refuse_inapplicable(args)
    check_engine_options(args)
    output = check_output_path(args.output)
    _refuse_overwriting(args, output, provenance=True)
    deduplicating = args.selector in DEDUP_SELECTORS or args.dedup is not None
    embedded = args.selector in EMBED_SELECTORS
    if deduplicating:
        check_dedup_args(args)
        if args.engine == "ray":
            return run_on_ray(args, dedup_on_ray(args, lambda: _build_selector(args)))
        if embedded:
            check_embed_args(args)
    elif embedded:
        check_embed_args(args)
        if args.engine == "ray":
            return run_embedded_on_ray(args)
    else:
        selector = _build_selector(args)
        if args.engine == "ray":
            return run_on_ray(args, selector)
    dataset = load_input(args)
    if args.selector in MODEL_SELECTORS and args.dry_run:
        return model_dry_run(args, dataset)
    X = None
    if args.selector == "quality" and args.dry_run:
        return _dry_run(args, selector, dataset)
    if args.selector in LOGPROB_SELECTORS and args.dry_run:
        return logprob_dry_run(args, selector, dataset)
    t0 = time.perf_counter()
    params = None
    if deduplicating:
        selector, X = build_with_dedup(
            args,
            dataset,
            lambda: _build_selector(args),
            lambda embedder: embedding_selector(args, embedder),
            lambda ds: embed(args, ds),
        )
    elif embedded:
        from ..embedding import PrecomputedEmbeddings

        # The rows are embedded once here (the vectors serve --plot too); the provenance
        # records the selector the options describe, as a run with --engine ray does.
        described = described_selector(args)
        X, identity = embed(args, dataset)
        selector = described.clone(embedder=PrecomputedEmbeddings(X, identity=identity))
        params = described.describe_params()
    selection = selector.run(dataset)
    elapsed = time.perf_counter() - t0
    subset = dataset.select(selection.indices)
    labels = selection.extra.get("labels")
    if args.selector == "diversity" and args.cluster_column is not None and labels is not None:
        if args.cluster_column in subset.column_names:
            raise CliError(f"--cluster-column {args.cluster_column!r} is already a column")
        subset = subset.add_column(args.cluster_column, labels[selection.indices].tolist())
    record = selection.provenance()
    if params is not None:
        record["params"] = params
    stamp_record(record, args, output, elapsed)
    prov_path = provenance_path(output)
    save_data(subset, output)
    write_json_atomic(record, prov_path)
    for path in write_row_tables(selection.extra, output):
        info(f"per-row details: {path}", args.quiet)
    if args.report:
        print("\n".join(dedup_report(selection.extra)) or "no deduplication in this run")
    if embedded and args.plot and args.selector in COVERAGE_SELECTORS:
        coverage_plot(args, selector, X, selection.indices)
    elif embedded and args.plot and X is not None and X.shape[0] == len(dataset):
        plot_embedding(X, labels, selection.indices, Path(args.plot), plot_title(args, X))
        info(f"plot: {args.plot}", args.quiet)
    if "rating" in selection.extra:
        info("judge: " + rating_line(selection.extra["rating"]), args.quiet)
    info(
        f"selected {len(subset):,} of {len(dataset):,} rows in {elapsed:.1f}s -> {output} "
        f"(provenance: {prov_path})",
        args.quiet,
    )
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from ..data.io import check_output_path, save_data

    refuse_inapplicable(args)
    output = check_output_path(args.output)
    _refuse_overwriting(args, output, provenance=False)
    ratings = None
    if args.selector == "quality":
        selector = _quality_selector(
            args, k=None, min_score=0.0, max_score=None, ties="stable", seed=0
        )
        dataset = load_input(args)
        if args.dry_run:
            return _dry_run(args, selector, dataset)
        ratings = selector.rate(dataset)
        column, values = "quality_score", ratings.scores
        info("judge: " + rating_line(ratings.summary()), args.quiet)
    elif args.selector in MODEL_SELECTORS:
        dataset = load_input(args)
        if args.dry_run:
            return model_dry_run(args, dataset)
        column, values = score_with_model(args, dataset)
    elif args.selector in LOGPROB_SELECTORS:
        dataset = load_input(args)
        if args.dry_run:
            return logprob_dry_run(args, logprob_selector(args, scoring=True), dataset)
        column, values = logprob_scores(args, dataset)
    else:
        selector = length_scorer(args)
        dataset = load_input(args)
        column, values = "response_length", selector.score(dataset)
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    cast = int if column == "response_length" else float  # lengths are counts
    scored = dataset.add_column(column, [None if np.isnan(v) else cast(v) for v in values])
    if ratings is not None and args.keep_replies:
        scored = scored.add_column("quality_reply", ratings.replies)
        scored = expected_columns(scored.add_column("quality_reason", ratings.reasons), ratings)
    save_data(scored, output)
    info(f"wrote {len(scored):,} rows with {column!r} -> {output}", args.quiet)
    return 0
