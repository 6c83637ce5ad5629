"""Pairwise LLM-as-judge evaluation, as in *Long Is More for Alignment*.

Each test prompt is judged twice, once with each answer shown first; the two
verdicts are combined by the paper's rule (and FastChat's), and summarized per
test set and overall: win/tie/lose, the win score ``(W - L) / N + 1`` with a
seeded bootstrap interval, the position-flip rate, parse failures and the mean
answer lengths. See ``docs/evaluation.md``.

=========================  ==================================================
module                     holds
=========================  ==================================================
``protocols``              the judge prompts (paper, FastChat pair-v2, ours)
``parse``                  strict reply parsers (two scores; verdict tags)
``combine``                the combination rules, win score, bootstrap
``inputs``                 ``Pairs`` and ``load_pairs`` (generate, AlpacaEval, pairs files)
``pairwise``               ``judge_pairs``, ``pairwise``, ``PairwiseResult``,
                           ``estimate_judge_cost`` (a dry run)
``summary``                the per-test-set summary
``report``                 the Markdown table and the W/T/L figure
``external``               optional alpaca_eval / lm-eval wrappers
=========================  ==================================================
"""

from .combine import adjusted_win_rate, combine_fastchat, combine_paper, win_score
from .inputs import Pairs, load_pairs
from .pairwise import PairwiseResult, estimate_judge_cost, judge_pairs, pairwise, plan_requests
from .parse import ParsedVerdict, parse_score_pair, parse_verdict_tag
from .protocols import PairwiseProtocol, pairwise_protocol, protocol_names
from .report import load_result, markdown_table, plot_wtl

__all__ = [
    "Pairs",
    "PairwiseProtocol",
    "PairwiseResult",
    "ParsedVerdict",
    "adjusted_win_rate",
    "combine_fastchat",
    "combine_paper",
    "estimate_judge_cost",
    "judge_pairs",
    "load_pairs",
    "load_result",
    "markdown_table",
    "pairwise",
    "pairwise_protocol",
    "parse_score_pair",
    "parse_verdict_tag",
    "plan_requests",
    "plot_wtl",
    "protocol_names",
    "win_score",
]
