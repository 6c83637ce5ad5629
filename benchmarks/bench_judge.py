"""Benchmark the pairwise judge: 805 pairs in both orders against one request at a time.

Run from the repository root (with sftselect installed)::

    python benchmarks/bench_judge.py                    # 805 AlpacaEval pairs, 0.1 s latency
    python benchmarks/bench_judge.py --full-sequential  # time the baseline on all 1,610 requests

The judge is a scripted OpenAI-compatible server (``sftselect.testing.LoopbackServer``) on
127.0.0.1 that answers like the paper's GPT-4 judge: two scores on the first
line (from a hash of the prompt) and an explanation, after ``--latency``
seconds. It runs in a separate process (this file re-run with ``--serve``), so
it does not share the client's GIL, as a real judge would not.

The pairs are the 805 real AlpacaEval instructions with the real outputs of
gpt4_1106_preview (A) and text_davinci_003 (B) from ``../shared/data`` beside the checkout
(synthetic answers when that folder is absent), so 1,610 requests.

1. Baseline: the loop of the paper's ``evaluation_gpt4.py``, one request at a
   time (``OpenAICompatibleBackend(..., max_concurrency=1)``, ``await
   backend.chat(request)``, parse), timed on ``--sequential-sample`` requests
   and extrapolated linearly to the distinct requests that run 2 sends
   (``--full-sequential`` times all; the table says "extrapolated" when it is).
2. ``judge_pairs(pairs, OpenAICompatibleBackend(..., max_concurrency=C),
   cache=<fresh SQLite file>, max_concurrency=C)``, C = 64 by default, on a
   fresh cache each run: target at least 40x faster. Identical requests are
   sent once (a few AlpacaEval pairs have identical answers, so order ab and ba
   are the same request: 1,606 distinct of 1,610).

Both sides are warmed up untimed, then run ``--repeats`` times each, in
alternating order (background load on a shared machine only ever slows a run
down, so the best of each side counts). The verdicts of every baseline run must
equal run 2's (a verdict row).
3. The same run again on the same cache: target zero requests to the server.

It always exits 0: a report, with PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = str(ROOT.parent / "shared" / "data")  # ../shared/data beside the checkout
MODEL = "pairwise-judge"
NO_KEY_ENV = "SFTSELECT_BENCH_NO_KEY"  # never set: no Authorization header is sent


# -- the judge server (child process) -------------------------------------------
def judge_reply(body: dict[str, Any]) -> str:
    """Two scores from a hash of the prompt, then an explanation (the paper's format)."""
    user = str(body["messages"][-1]["content"])
    digest = hashlib.sha256(user.encode("utf-8")).digest()
    s1, s2 = 4 + digest[0] % 7, 4 + digest[1] % 7
    return f"{s1} {s2}\nAssistant 1 is scored {s1} and Assistant 2 {s2} for helpfulness and detail."


def serve(latency: float) -> int:
    """Child mode: run a LoopbackServer and answer ``count`` / ``quit`` on stdin."""
    from sftselect.testing import LoopbackServer

    with LoopbackServer(judge_reply, latency=latency, model=MODEL) as server:
        print(json.dumps({"base_url": server.base_url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "count":
                out = {"requests": server.request_count, "max_in_flight": server.max_in_flight}
                print(json.dumps(out), flush=True)
            elif command in ("quit", ""):
                break
    return 0


class JudgeServer:
    """The parent's handle on the judge server child process."""

    def __init__(self, latency: float) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--latency", repr(latency)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.base_url = self._read()["base_url"]

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"the judge server exited (code {self.proc.poll()})")
        return json.loads(line)

    def count(self) -> dict[str, Any]:
        if self.proc.stdin is None:
            raise RuntimeError("the judge server has no stdin")
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return self._read()

    def __enter__(self) -> JudgeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.write("quit\n")
                    self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# -- helpers -------------------------------------------------------------------
def load_pairs_for_bench(data_dir: str) -> tuple[Any, str]:
    from sftselect.evaluate import Pairs, load_pairs

    folder = Path(data_dir) / "alpaca_eval"
    a, b = folder / "gpt4_1106_preview.json", folder / "text_davinci_003.json"
    if a.exists() and b.exists():
        return load_pairs(a, b), f"{a.name} vs {b.name} (real AlpacaEval outputs)"
    n = 805
    pairs = Pairs.from_lists(
        [f"Instruction {i}: explain topic {i}." for i in range(n)],
        [f"A long answer about topic {i}. " * 20 for i in range(n)],
        [f"A short answer about topic {i}." for i in range(n)],
        testsets="synthetic",
    )
    return pairs, f"synthetic ({folder} not found)"


def make_backend(base_url: str, concurrency: int) -> Any:
    from sftselect.backends.openai_compat import OpenAICompatibleBackend

    return OpenAICompatibleBackend(
        MODEL, base_url=base_url, api_key_env=NO_KEY_ENV, max_concurrency=concurrency
    )


def sequential(base_url: str, requests: list) -> list:
    """One request at a time, parsed, as the paper's script does."""
    from sftselect.evaluate.parse import parse_score_pair

    backend = make_backend(base_url, 1)

    async def loop() -> list:
        out = []
        for request in requests:
            reply = await backend.chat(request)
            out.append(parse_score_pair(reply.text, (1, 10)).verdict)
        return out

    return asyncio.run(loop())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="runs of [2]; the best counts")
    p.add_argument("--sequential-sample", type=int, default=60)
    p.add_argument("--full-sequential", action="store_true")
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.latency)

    from sftselect.evaluate import judge_pairs, plan_requests

    load = os.getloadavg()
    print(
        f"bench_judge: python {platform.python_version()}, {os.cpu_count()} CPUs (load average "
        f"{load[0]:.2f}), latency={args.latency:g}s concurrency={args.concurrency}"
    )
    pairs, source = load_pairs_for_bench(args.data_dir)
    requests = plan_requests(pairs, "paper")
    n = len(requests)
    print(f"data: {len(pairs):,} pairs, {source}; {n:,} requests (both orders)")
    results: list[tuple[str, str, str, bool]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench_judge_") as tmp,
        JudgeServer(args.latency) as server,
    ):
        sample = requests if args.full_sequential else requests[: args.sequential_sample]
        identity = make_backend(server.base_url, 1).identity
        distinct = len({r.cache_key(identity) for r in requests})
        floor = distinct / args.concurrency * args.latency
        repeats = max(1, args.repeats)

        def run_judge(cache_file: str) -> Any:
            return judge_pairs(
                pairs,
                make_backend(server.base_url, args.concurrency),
                protocol="paper",
                cache=cache_file,
                max_concurrency=args.concurrency,
            )

        # Untimed warm-up of both sides (imports, connections, SQLite), so that neither
        # pays start-up costs inside a timed run.
        sequential(server.base_url, sample[: min(8, len(sample))])
        run_judge(os.path.join(tmp, "warm-up.sqlite"))
        print(
            f"\n[1] sequential, one request at a time, on {len(sample)} requests, and [2] "
            f"judge_pairs, concurrency {args.concurrency}, a fresh SQLite cache each run "
            f"({distinct:,} distinct requests; latency floor {floor:.2f} s): both warmed up "
            f"untimed, then {repeats} rounds, the order alternating; the best of each side counts"
        )
        seq_walls, seq_runs = [], []
        walls, cpus, sents = [], [], []
        result = None
        cache = ""
        for i in range(repeats):
            for side in ("baseline", "judge") if i % 2 == 0 else ("judge", "baseline"):
                before = server.count()["requests"]
                if side == "baseline":
                    t0 = time.perf_counter()
                    seq_runs.append(sequential(server.base_url, sample))
                    seq_walls.append(time.perf_counter() - t0)
                    sent = server.count()["requests"] - before
                    print(
                        f"    round {i + 1}, [1] sequential: {len(sample)} requests in "
                        f"{seq_walls[-1]:.2f} s ({seq_walls[-1] / len(sample) * 1e3:.1f} ms each; "
                        f"server saw {sent}); load average {os.getloadavg()[0]:.2f}"
                    )
                    continue
                cache = os.path.join(tmp, f"judge-{i}.sqlite")
                t0, c0 = time.perf_counter(), time.process_time()
                run = run_judge(cache)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                stats = server.count()
                sents.append(stats["requests"] - before)
                result = result or run
                print(
                    f"    round {i + 1}, [2] judge_pairs: {walls[-1]:.2f} s wall, client CPU "
                    f"{cpus[-1]:.2f} s; server saw {sents[-1]:,} requests, at most "
                    f"{stats['max_in_flight']} in flight; load average {os.getloadavg()[0]:.2f}"
                )
        seq_verdicts = seq_runs[0]
        per = min(seq_walls) / len(sample)
        extrapolated = len(sample) < distinct
        seq_total = per * distinct if extrapolated else min(seq_walls)
        how = (
            f"{len(sample)} timed, extrapolated linearly to the {distinct:,} distinct requests "
            "judge_pairs sends"
            if extrapolated
            else "measured"
        )
        print(
            f"    [1] best {min(seq_walls):.2f} s ({per * 1e3:.1f} ms per request); "
            f"{distinct:,} requests: {seq_total:.1f} s ({how})"
        )
        wall = min(walls)
        ratio = seq_total / wall
        median = sorted(walls)[len(walls) // 2]
        print(f"    run report: {result.report.summary()}")
        o = result.summary["overall"]
        print(
            f"    overall W/T/L {o['win']}/{o['tie']}/{o['lose']}, win score {o['win_score']:.3f} "
            f"[{o['win_score_ci'][0]:.3f}, {o['win_score_ci'][1]:.3f}], parse failures "
            f"{o['parse_failures']}"
        )
        same = (
            all(v == seq_verdicts for v in seq_runs)
            and [
                j["verdict_ab"] if k % 2 == 0 else j["verdict_ba"]
                for k, j in ((k, result.judgments[k // 2]) for k in range(len(sample)))
            ]
            == seq_verdicts
        )
        print(f"    verdicts equal the sequential run's on its {len(sample)} requests: {same}")
        print(
            f"\n    speed-up vs one request at a time: {ratio:.1f}x (best of {len(walls)} each; "
            f"median {seq_total / median:.1f}x)"
        )
        value = f"{ratio:.1f}x ({wall:.2f} s vs {seq_total:.0f} s" + (
            f", extrapolated from {len(sample)} timed)" if extrapolated else ")"
        )
        results.append(("[2] judge_pairs vs sequential", value, ">= 40x", ratio >= 40))
        ok = all(x == distinct for x in sents)
        results.append(
            ("[2] one request per distinct prompt", f"{sents[0]:,}", f"== {distinct:,}", ok)
        )
        results.append(("[2] same verdicts as sequential", str(same), "True", same))

        before = server.count()["requests"]
        t0 = time.perf_counter()
        again = judge_pairs(
            pairs,
            make_backend(server.base_url, args.concurrency),
            protocol="paper",
            cache=cache,
            max_concurrency=args.concurrency,
        )
        wall2 = time.perf_counter() - t0
        sent2 = server.count()["requests"] - before
        print(f"\n[3] the same run on the same cache: {wall2:.2f} s, server saw {sent2} requests")
        results.append(("[3] cached re-run: requests", str(sent2), "== 0", sent2 == 0))
        same_summary = again.summary == result.summary
        results.append(("[3] cached re-run: same summary", str(same_summary), "True", same_summary))

    print(f"\nsummary (load average {os.getloadavg()[0]:.2f} at the end)")
    for name, value, target, ok in results:
        print(f"{name:<42} {value:<44} {target:<10} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
