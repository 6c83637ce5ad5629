"""The pairwise judge end to end: real HTTP loopback server, real OpenAI-compatible client."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from sftselect.backends import ReplyCache
from sftselect.backends.openai_compat import OpenAICompatibleBackend
from sftselect.cli import main
from sftselect.evaluate import Pairs, judge_pairs, load_pairs, load_result, pairwise
from sftselect.exceptions import JudgeRequestError
from sftselect.testing import Fault, LoopbackServer, hashed_faults
from tests.helpers.paths import REPO, SHARED_DATA, require_shared_data

_SHOWN = re.compile(r"\[The Start of Assistant (?:1|2|A|B)'s Answer\]\n(.*?)\n{1,2}\[The End", re.S)
_QUALITY = re.compile(r"q=(\d+)")
BIAS = 2  # the scripted judge adds this to the answer shown first


def shown_answers(body):
    """The two answers in the order the judge was shown them."""
    first, second = _SHOWN.findall(body["messages"][-1]["content"])
    return first, second


def scripted_judge(style, bias=BIAS):
    """A judge that scores an answer by its 'q=N' marker, plus `bias` for the first position.

    An answer containing NO-SCORE shown first gets a reply with no score; one containing
    FAIL-HERE shown first gets HTTP 400 (a request the client must not retry).
    """

    def reply(body):
        first, second = shown_answers(body)
        if "FAIL-HERE" in first:
            return Fault.status_code(400, "refused (scripted)")
        if "NO-SCORE" in first:
            return "Both answers have strengths, and I cannot choose between them."
        s1 = min(10, int(_QUALITY.search(first).group(1)) + bias)
        s2 = int(_QUALITY.search(second).group(1))
        if style == "scores":
            return f"{s1} {s2}\nAssistant 1 scored {s1} and Assistant 2 scored {s2}."
        tag = "A" if s1 > s2 else "B" if s2 > s1 else "C"
        return f"Comparing the two answers carefully, my final verdict is [[{tag}]]"

    return reply


# (testset, quality A, quality B, extra marker in A) and the hand-computed outcome with bias 2:
CASES = [
    ("vicuna", 9, 5, ""),  # ab 10:5 win, ba 7:9 win          -> win,  FastChat win
    ("vicuna", 6, 5, ""),  # ab 8:5 win,  ba 7:6 lose         -> tie,  FastChat tie (flip)
    ("vicuna", 6, 4, ""),  # ab 8:4 win,  ba 6:6 tie          -> win,  FastChat tie (flip)
    ("koala", 2, 8, ""),  # ab 4:8 lose,  ba 10:2 lose        -> lose, FastChat lose
    ("koala", 5, 5, ""),  # ab 7:5 win,   ba 7:5 lose         -> tie,  FastChat tie (flip)
    ("koala", 5, 3, "NO-SCORE"),  # ab unparsable, ba 5:5 tie -> parse failure
    ("koala", 1, 9, ""),  # ab 3:9 lose,  ba 10:1 lose        -> lose, FastChat lose
]


def case_pairs(cases=CASES):
    """The scripted cases as Pairs (prompts are real Vicuna questions when the data is there)."""
    questions = [f"Question number {i}?" for i in range(len(cases))]
    path = SHARED_DATA / "testsets" / "vicuna_test_set.jsonl"
    if path.exists():
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        questions = [r["text"] for r in rows[: len(cases)]]
    return Pairs.from_lists(
        questions,
        [
            f"q={qa} {mark} answer A to {i}".replace("  ", " ")
            for i, (_, qa, _, mark) in enumerate(cases)
        ],
        [f"q={qb} answer B to {i}" for i, (_, _, qb, _) in enumerate(cases)],
        testsets=[c[0] for c in cases],
        model_a="model-a",
        model_b="model-b",
    )


def backend(server, **options):
    return OpenAICompatibleBackend(
        "judge", base_url=server.base_url, backoff_base=0.01, max_retries=5, **options
    )


EXPECTED = {
    "vicuna": {"win": 2, "tie": 1, "lose": 0, "parse_failures": 0, "flips": 2, "fast": (1, 2, 0)},
    "koala": {"win": 0, "tie": 1, "lose": 2, "parse_failures": 1, "flips": 1, "fast": (0, 1, 2)},
    "overall": {"win": 2, "tie": 2, "lose": 2, "parse_failures": 1, "flips": 3, "fast": (1, 3, 2)},
}


def _check_against_hand_computed(summary):
    groups = {"overall": summary["overall"], **summary["by_testset"]}
    for name, want in EXPECTED.items():
        g = groups[name]
        n = want["win"] + want["tie"] + want["lose"]
        assert (g["win"], g["tie"], g["lose"], g["scored"]) == (
            want["win"],
            want["tie"],
            want["lose"],
            n,
        ), name
        assert g["win_score"] == pytest.approx((want["win"] - want["lose"]) / n + 1), name
        assert g["parse_failures"] == want["parse_failures"], name
        assert g["position_flips"] == want["flips"], name
        assert g["position_flip_rate"] == pytest.approx(want["flips"] / n), name
        fw, ft, fl = want["fast"]
        assert (g["fastchat"]["win"], g["fastchat"]["tie"], g["fastchat"]["lose"]) == (fw, ft, fl)
        assert g["fastchat"]["win_rate_adjusted"] == pytest.approx((fw + 0.5 * ft) / n), name
        lo, hi = g["win_score_ci"]
        assert 0.0 <= lo <= g["win_score"] <= hi <= 2.0, name


@pytest.mark.parametrize(
    ("protocol", "style"),
    [("paper", "scores"), ("fastchat-pair-v2", "verdict"), ("length-debiased", "scores")],
)
def test_position_biased_judge_gives_the_hand_computed_summary(protocol, style):
    """With a +2 first-position bias, W/T/L, win score, FastChat rule, flips and parse failures match hand computation."""
    pairs = case_pairs()
    with LoopbackServer(reply=scripted_judge(style)) as server:
        result = judge_pairs(pairs, backend(server), protocol=protocol, n_bootstrap=300)
        assert server.request_count == 2 * len(pairs)
    _check_against_hand_computed(result.summary)
    overall = result.summary["overall"]
    assert overall["unparsable_replies"] == 1 and overall["request_failures"] == 0
    assert overall["verdicts_by_position"] == {"first": 8, "second": 3, "tie": 2}
    bad = result.judgments[5]
    assert bad["status"] == "parse_failure" and bad["outcome"] is None
    assert bad["reply_ab"].startswith("Both answers have strengths") and bad["verdict_ba"] == "tie"
    assert result.to_dict()["protocol"]["version"] == result.protocol.version


def test_swapping_sides_mirrors_the_result_and_sends_nothing(tmp_path):
    """Judging B vs A after A vs B reuses every cached reply; W and L swap, ties stay, score -> 2 - score."""
    pairs = case_pairs()
    cache = tmp_path / "judge.sqlite"
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        ab = judge_pairs(pairs, backend(server), cache=cache, n_bootstrap=200)
        sent = server.request_count
        ba = judge_pairs(pairs.swapped(), backend(server), cache=cache, n_bootstrap=200)
        assert server.request_count == sent and ba.report.sent == 0
    for name in ("koala", "vicuna"):
        x, y = ab.summary["by_testset"][name], ba.summary["by_testset"][name]
        assert (y["win"], y["tie"], y["lose"]) == (x["lose"], x["tie"], x["win"])
        assert y["win_score"] == pytest.approx(2 - x["win_score"])
        assert y["position_flips"] == x["position_flips"]
        assert y["parse_failures"] == x["parse_failures"]


def test_rerun_on_the_cache_makes_zero_requests(tmp_path):
    """A second identical run on the same cache file sends no request and gives the same summary."""
    pairs = case_pairs()
    cache = tmp_path / "judge.sqlite"
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        first = judge_pairs(pairs, backend(server), cache=cache)
        before = server.request_count
        again = judge_pairs(pairs, backend(server), cache=cache)
        assert server.request_count == before == 14
    assert again.report.sent == 0 and again.report.cache_hits == 14
    assert again.summary == first.summary


def test_transient_faults_are_retried_and_every_request_answered_once():
    """Under 429/500 faults on 40% of prompts the client retries; each prompt gets one 200 and the summary is unchanged."""
    pairs = case_pairs()
    faults = hashed_faults(0.4, [Fault.rate_limit(0), Fault.server_error(503)], random_state=3)
    with LoopbackServer(reply=scripted_judge("scores"), faults=faults) as server:
        result = judge_pairs(pairs, backend(server), n_bootstrap=300)
        ok = [r for r in server.requests if r.fault is None]
        faulted = server.request_count - len(ok)
    assert faulted > 0 and result.report.retries == faulted
    assert len(ok) == 14 and len({r.prompt_key for r in ok}) == 14
    _check_against_hand_computed(result.summary)


def test_failed_request_raises_after_caching_the_rest_then_resumes(tmp_path):
    """A refused request (HTTP 400) raises JudgeRequestError; the other replies are cached, so a re-run sends one request."""
    cases = [*CASES, ("vicuna", 7, 3, "FAIL-HERE")]
    pairs = case_pairs(cases)
    cache = tmp_path / "judge.sqlite"
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        with pytest.raises(JudgeRequestError, match="1 of 16 judge requests failed"):
            judge_pairs(pairs, backend(server), cache=cache)
        assert len(ReplyCache(cache)) == 15
        server.reset()
        result = judge_pairs(pairs, backend(server), cache=cache, on_request_error="omit")
        assert server.request_count == 1
    failed = result.judgments[-1]
    assert failed["status"] == "request_failure" and "400" in failed["reason_ab"]
    assert failed["verdict_ba"] == "second"  # B shown first: 3 + 2 vs 7, A preferred
    assert result.summary["by_testset"]["vicuna"]["request_failures"] == 1
    assert result.summary["overall"]["scored"] == 6


def test_real_alpaca_eval_pairs_with_a_length_loving_judge():
    """On 60 real AlpacaEval pairs a judge that scores by length gives W/T/L equal to the length comparison."""
    require_shared_data()
    folder = SHARED_DATA / "alpaca_eval"
    full = load_pairs(folder / "gpt4_1106_preview.json", folder / "text_davinci_003.json")
    keep = range(0, 805, 805 // 60)
    pairs = Pairs.from_lists(
        [full.prompts[i] for i in keep],
        [full.answers_a[i] for i in keep],
        [full.answers_b[i] for i in keep],
        testsets=[full.testsets[i] for i in keep],
        model_a=full.model_a,
        model_b=full.model_b,
    )

    def by_length(body):
        first, second = shown_answers(body)
        s1, s2 = (min(10, 1 + len(t.split()) // 40) for t in (first, second))
        return f"{s1} {s2}\nThe longer answer is more detailed."

    with LoopbackServer(reply=by_length) as server:
        result = judge_pairs(pairs, backend(server, max_concurrency=32), n_bootstrap=200)
    expected = {"win": 0, "tie": 0, "lose": 0}
    for a, b in zip(pairs.answers_a, pairs.answers_b):
        sa, sb = (min(10, 1 + len(t.split()) // 40) for t in (a, b))
        expected["win" if sa > sb else "lose" if sb > sa else "tie"] += 1
    o = result.summary["overall"]
    assert {k: o[k] for k in expected} == expected and o["position_flips"] == 0
    assert o["mean_words_a"] > o["mean_words_b"] and o["win"] > o["lose"]
    assert set(result.summary["by_testset"]) == set(pairs.testsets)


def test_pairwise_on_plain_lists_validates_and_judges():
    """pairwise() takes three lists and one test-set name and judges each pair twice."""
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        result = pairwise(
            ["Q1?", "Q2?"],
            ["q=8 a", "q=2 a"],
            ["q=3 b", "q=9 b"],
            judge=backend(server),
            testsets="mini",
            n_bootstrap=0,
        )
    o = result.summary["by_testset"]["mini"]
    assert (o["win"], o["tie"], o["lose"]) == (1, 0, 1) and o["win_score_ci"] is None


def _write_generate(path, pairs, side, model):
    answers = pairs.answers_a if side == "a" else pairs.answers_b
    rows = [
        {"id": i, "testset": t, "prompt": p, "answer": a, "model": model}
        for i, t, p, a in zip(pairs.ids, pairs.testsets, pairs.prompts, answers)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_judge_writes_summary_and_report_renders_table_and_png(tmp_path, capsys):
    """`sftselect judge` writes judgments and a summary with the required keys; `report` prints the table and a PNG."""
    pairs = case_pairs()
    a = _write_generate(tmp_path / "a.jsonl", pairs, "a", "longest-1k")
    b = _write_generate(tmp_path / "b.jsonl", pairs, "b", "alpaca-52k")
    out = tmp_path / "out.json"
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        args = [
            "judge", "--answers-a", str(a), "--answers-b", str(b), "--base-url", server.base_url,
            "--model", "judge", "--protocol", "paper", "--cache", str(tmp_path / "c.sqlite"),
            "-o", str(out), "--n-bootstrap", "200", "-q",
        ]  # fmt: skip
        assert main(args) == 0
        assert main(args) == 0 and server.request_count == 14  # the re-run came from the cache
    doc = load_result(out)
    assert (doc["model_a"], doc["model_b"]) == ("longest-1k", "alpaca-52k")
    for group in (doc["summary"]["overall"], *doc["summary"]["by_testset"].values()):
        assert {"win", "tie", "lose", "win_score", "parse_failures"} <= set(group)
    _check_against_hand_computed(doc["summary"])
    assert len(doc["judgments"]) == 7 and doc["judgments"][0]["reply_ab"].startswith("10 5")
    assert (
        doc["protocol"]["version"] == "long-is-more-pairwise-v1" and doc["bootstrap"]["seed"] == 0
    )
    capsys.readouterr()
    png = tmp_path / "fig.png"
    assert (
        main(["report", str(out), "--figure", str(png), "--markdown", str(tmp_path / "t.md")]) == 0
    )
    table = capsys.readouterr().out
    assert "| vicuna | 3 | 3 | 2 | 1 | 0 | 1.667 [" in table and "| **overall** | 7 | 6 |" in table
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "t.md").read_text() == table
    # Without the plot extra: the table still prints, and stderr says how to get the figure.
    with pytest.MonkeyPatch.context() as patch:
        import importlib.util

        find_spec = importlib.util.find_spec
        patch.setattr(
            importlib.util,
            "find_spec",
            lambda n, *a: None if n == "matplotlib" else find_spec(n, *a),
        )
        assert main(["report", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out == table and 'pip install "sftselect[plot]"' in printed.err
    assert not out.with_suffix(".png").exists()


def test_cli_report_refuses_a_file_that_is_not_a_result(tmp_path, capsys):
    """`sftselect report` on another JSON exits 2 with one line naming the expected format."""
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not a pairwise result" in err and len(err.strip().splitlines()) == 1


def test_cli_judge_misaligned_alpaca_eval_exits_with_the_mismatch(tmp_path, capsys):
    """Misaligned AlpacaEval files make `sftselect judge` exit 2 naming the first mismatch, sending nothing."""
    require_shared_data()
    raw = json.loads((SHARED_DATA / "alpaca_eval" / "alpaca-7b.json").read_text())
    b = tmp_path / "b.json"
    b.write_text(json.dumps(raw[1:]))
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        code = main(
            [
                "judge", "--answers-a", str(SHARED_DATA / "alpaca_eval" / "alpaca-7b.json"),
                "--answers-b", str(b), "--base-url", server.base_url, "--model", "judge",
                "--cache", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / "o.json"), "-q",
            ]
        )  # fmt: skip
        assert server.request_count == 0
    assert code == 2 and "first mismatch is record 0" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_killed_judge_process_resumes_sending_only_the_rest(tmp_path):
    """A `sftselect judge` process killed mid-run keeps its replies; the re-run sends only the missing ones."""
    cases = [("vicuna", 3 + i % 5, 4 + i % 3, "") for i in range(30)]
    pairs = case_pairs(cases)
    a = _write_generate(tmp_path / "a.jsonl", pairs, "a", "x")
    b = _write_generate(tmp_path / "b.jsonl", pairs, "b", "y")
    cache = tmp_path / "c.sqlite"
    with LoopbackServer(reply=scripted_judge("scores"), latency=0.15) as server:
        cmd = [
            sys.executable, "-m", "sftselect.cli", "judge", "--answers-a", str(a),
            "--answers-b", str(b), "--base-url", server.base_url, "--model", "judge",
            "--cache", str(cache), "-o", str(tmp_path / "o.json"), "--max-concurrency", "2", "-q",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if cache.exists() and len(ReplyCache(cache)) >= 8:
                    break
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait(30)
        assert proc.returncode != 0, "the run finished before it could be killed"
        stored = len(ReplyCache(cache))
        assert 8 <= stored < 60
        server.reset()
        judge = OpenAICompatibleBackend("judge", base_url=server.base_url)
        result = judge_pairs(pairs, judge, cache=cache, n_bootstrap=0)
        assert server.request_count == 60 - stored
    assert result.report.cache_hits == stored and result.report.sent == 60 - stored
    assert len(ReplyCache(cache)) == 60 and result.summary["overall"]["scored"] == 30
    assert not (tmp_path / "o.json").exists()


def _judge_section(doc):
    """The `judge` options part of docs/cli.md: from its heading to the paragraph on `report`."""
    start = doc.index("### `judge` and `report` options")
    return doc[start : doc.index("`report RESULT.json` takes", start)]


def test_docs_list_exactly_the_options_judge_accepts():
    """docs/cli.md's judge section names every option `sftselect judge` accepts and no other."""

    from sftselect.cli import build_parser

    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = [line for line in _judge_section(doc).splitlines() if line.startswith("| `-")]
    named = {f for line in rows for f in re.findall(r"`(--?[a-z][a-z0-9-]*)", line.split(" | ")[0])}
    parser = build_parser()
    judge = parser._subparsers._group_actions[0].choices["judge"]
    accepted = {s for a in judge._actions for s in a.option_strings} - {"-h", "--help"}
    assert named == accepted
    row = next(line for line in doc.splitlines() if line.startswith("| `judge --answers-a"))
    assert "judge options above" not in row and "`--on-request-error raise\\|omit`" in doc


def _judge_args(server, tmp_path, a, b, *extra):
    return [
        "judge", "--answers-a", str(a), "--answers-b", str(b), "--base-url", server.base_url,
        "--model", "judge", "--cache", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / "o.json"),
        "--n-bootstrap", "0", "-q", *extra,
    ]  # fmt: skip


def test_cli_judge_dry_run_counts_cached_requests_tokens_and_cost_sending_nothing(tmp_path, capsys):
    """`judge --dry-run` prints the requests to send, those cached, prompt tokens and a cost bound; it sends and writes nothing."""
    pairs = case_pairs()
    a = _write_generate(tmp_path / "a.jsonl", pairs, "a", "x")
    b = _write_generate(tmp_path / "b.jsonl", pairs, "b", "y")
    prices = ["--usd-per-1m-input", "30", "--usd-per-1m-output", "60"]
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        assert main(_judge_args(server, tmp_path, a, b, "--dry-run", *prices)) == 0
        assert server.request_count == 0
        assert not (tmp_path / "c.sqlite").exists() and not (tmp_path / "o.json").exists()
        first = capsys.readouterr().out
        assert "14 requests to send (0 cached)" in first and "at most 3,584 output tokens" in first
        assert "prompt tokens [" in first
        approximate = "[approximate: characters / 4]" in first  # no tiktoken encoding offline
        assert f"estimated cost {'about' if approximate else 'at most'} $" in first
        # judge the first three pairs, then the dry run counts their six replies as cached
        head = [json.loads(x) for x in a.read_text().splitlines()][:3]
        a3 = tmp_path / "a3.jsonl"
        a3.write_text("".join(json.dumps(r) + "\n" for r in head))
        b3 = tmp_path / "b3.jsonl"
        b3.write_text("".join(b.read_text().splitlines(keepends=True)[:3]))
        assert main(_judge_args(server, tmp_path, a3, b3)) == 0
        sent = server.request_count
        capsys.readouterr()
        assert main(_judge_args(server, tmp_path, a, b, "--dry-run", *prices)) == 0
        assert server.request_count == sent == 6
    assert "8 requests to send (6 cached)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--seed", "-1"], "--seed"),
        (["--n-bootstrap", "-5"], "--n-bootstrap"),
        (["--confidence", "1"], "--confidence"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--timeout", "0"], "--timeout"),
        (["--usd-per-1m-input", "1"], "--usd-per-1m-input is a price for --dry-run"),
        (
            ["--dry-run", "--usd-per-1m-output", "1"],
            "--usd-per-1m-output needs --usd-per-1m-input",
        ),
    ],
)
def test_cli_judge_option_errors_name_the_flag_not_the_parameter(tmp_path, capsys, extra, flag):
    """A bad judge option exits 2 with an error naming its flag, not a Python parameter, and sends nothing."""
    pairs = case_pairs()
    a = _write_generate(tmp_path / "a.jsonl", pairs, "a", "x")
    b = _write_generate(tmp_path / "b.jsonl", pairs, "b", "y")
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        try:
            code = main(_judge_args(server, tmp_path, a, b, *extra))
        except SystemExit as exc:  # argparse refuses a value of the wrong kind
            code = exc.code
        assert server.request_count == 0
    err = capsys.readouterr().err
    assert code == 2 and flag in err
    assert "parameter of" not in err and "random_state" not in err and "max_tokens" not in err


def test_cli_request_failure_names_the_on_request_error_flag(tmp_path, capsys):
    """A failed judge request exits 2 with a message naming `--on-request-error omit`."""
    pairs = case_pairs([*CASES[:2], ("vicuna", 7, 3, "FAIL-HERE")])
    a = _write_generate(tmp_path / "a.jsonl", pairs, "a", "x")
    b = _write_generate(tmp_path / "b.jsonl", pairs, "b", "y")
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        assert main(_judge_args(server, tmp_path, a, b)) == 2
    err = capsys.readouterr().err
    assert "--on-request-error omit" in err and len(err.strip().splitlines()) == 1


def test_cli_report_on_an_answers_file_says_it_is_not_a_judge_result(tmp_path, capsys):
    """`sftselect report` on a generate answers file exits 2 with one line saying it is not a judge result and what report reads."""
    pairs = case_pairs()
    a = _write_generate(tmp_path / "a1.jsonl", pairs, "a", "x")
    assert main(["report", str(a)]) == 2
    err = capsys.readouterr().err
    assert "malformed" not in err and "not a pairwise result" in err
    assert "sftselect judge -o" in err and len(err.strip().splitlines()) == 1


def test_cli_judge_warns_on_pairs_left_out_and_exits_2_when_none_was_judged(tmp_path, capsys):
    """Some pairs left out: exit 0 with one warning line; every pair unparsable: the result is written and exit 2 with a one-line error."""
    pairs = case_pairs()
    a = _write_generate(tmp_path / "a.jsonl", pairs, "a", "x")
    b = _write_generate(tmp_path / "b.jsonl", pairs, "b", "y")
    with LoopbackServer(reply=scripted_judge("scores")) as server:
        assert main(_judge_args(server, tmp_path, a, b)) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sftselect judge: warning: ")
    assert "1 of 7 pairs were left out" in lines[0] and "pair 5" in lines[0]

    (tmp_path / "o.json").unlink()
    with LoopbackServer(reply=lambda body: "I cannot choose.") as server:
        assert main(_judge_args(server, tmp_path, a, b, "--protocol", "fastchat-pair-v2")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "7 of 7 pairs were left out" in lines[0]
    assert lines[1].startswith("sftselect judge: error: no pair could be judged")
    assert "7 with an unparsable reply" in lines[1] and "o.json" in lines[1]
    doc = load_result(tmp_path / "o.json")
    assert doc["summary"]["overall"]["win_score"] is None
    assert doc["judgments"][0]["reply_ab"] == "I cannot choose."
