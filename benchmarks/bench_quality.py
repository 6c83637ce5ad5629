"""Benchmark QualitySelector's judge runs against the sequential loop of the reference scripts.

Run from the repository root (with sftselect installed)::

    python benchmarks/bench_quality.py                       # 2,000 rows, 0.1 s latency
    python benchmarks/bench_quality.py --full-sequential     # time the baseline on every row
    python benchmarks/bench_quality.py --profile             # always break costs down, + cProfile

The judge is a scripted OpenAI-compatible server (``sftselect.testing.LoopbackServer``) on
127.0.0.1 that answers like an AlpaGasus judge: a score in {3.5, 4.0, 4.5, 5.0}
chosen by a hash of the prompt, a newline and an explanation, after
``--latency`` seconds. It runs in a SEPARATE PROCESS (this file, re-run with
``--serve``), so it does not share the client's GIL: in production the judge is
another machine. The parent drives it over stdin/stdout (``stats``, ``reset``).

Every number is measured in this run, and every ratio compares two
measurements of this run, on the same server and the same real Alpaca records
(``build_alpaca_pool`` on ``../shared/data`` beside the checkout; ``load_sample()``
if absent):

1. Baseline: the loop the AlpaGasus rating script (and the paper's scripts)
   effectively run, one request at a time: ``OpenAICompatibleBackend(...,
   max_concurrency=1)``, ``await backend.chat(request)`` then parse, for each
   request in turn. Sequential time is linear in the number of requests, so it
   is timed on ``--sequential-sample`` requests and extrapolated to ``--rows``
   (``--full-sequential`` times every row instead).
2. ``QualitySelector(OpenAICompatibleBackend(..., max_concurrency=64),
   min_score=4.5, cache=<fresh SQLite file>, max_concurrency=64).run(rows)``:
   target at least 40x faster than the baseline.
3. The same selection again on the same cache file: target zero requests
   reaching the server and at least 100x faster than run 2. (Run 2 stored its
   plan, :mod:`sftselect.backends.plans`, so this run reads every reply with
   one query and renders no request; the breakdown also times the rendering
   path that a run with a missing reply takes.)
4. Under faults (a fresh cache; the server answers 429 with ``Retry-After: 0``
   or 500 to the first attempt of a seeded ``--fault-rate`` share of prompts;
   the backend's retries on, default backoff): every record rated exactly once
   in the cache, every cached reply parses to a score, no prompt got more than
   one 200 from the server; the retries counted and the wall time reported.

Both sides are warmed up untimed (the baseline on a few requests, the selector
once on a throwaway cache), then runs 1 and 2 alternate for ``--repeats``
rounds (the order swapped each round, run 2 on a fresh cache each time) and the
best of each side counts; the baseline's extrapolated time counts the distinct
requests the selector sends. Run 3 is repeated ``--repeats`` times too, and the
table states its own cost per row besides its ratio to run 2 (whose time the
simulated latency sets). Whether the scores equal the baseline's is a verdict
row. Each run reports its wall time, the client's CPU time and how long the
client sat runnable but waiting for a CPU (other load on the machine). When a speed target is missed (or with ``--profile``) the script
says where the time goes: run 2 rebuilt layer by layer (bare HTTP client, +
backend and runner, + SQLite cache, + selector) and its parts timed apart, and
the parts of a cached run.

The script always exits 0: it is a report, with PASS/FAIL per target.
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
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = str(ROOT.parent / "shared" / "data")  # ../shared/data beside the checkout
MODEL = "alpagasus-judge"
NO_KEY_ENV = "SFTSELECT_BENCH_NO_KEY"  # never set: no Authorization header is sent
SCORES = (3.5, 4.0, 4.5, 5.0)
EXPLANATIONS = {
    3.5: (
        "The response addresses the instruction but contains an inaccuracy and omits "
        "details that the input calls for, so it is only partly correct."
    ),
    4.0: (
        "The response is accurate and relevant to the instruction, though it could be "
        "more complete and precise in a few places."
    ),
    4.5: (
        "The response accurately follows the instruction and uses the input correctly; "
        "it is clear and well organised, with only minor room for improvement."
    ),
    5.0: (
        "The response is fully accurate, complete and directly answers the instruction "
        "given the input, with no errors that I can identify."
    ),
}
RESULTS: list[dict[str, Any]] = []


# -- the judge server (child process) -------------------------------------------
def judge_score(user_message: str) -> float:
    """The score the scripted judge gives a prompt: a hash of it mapped onto SCORES."""
    digest = hashlib.sha256(user_message.encode("utf-8")).digest()
    return SCORES[digest[0] % len(SCORES)]


def judge_reply(body: dict[str, Any]) -> str:
    """An AlpaGasus-style rating: the score alone on the first line, then an explanation."""
    user = ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            user = str(message.get("content"))
            break
    score = judge_score(user)
    return f"{score:.1f}\n{EXPLANATIONS[score]}"


def serve(args: argparse.Namespace) -> int:
    """Child mode: run a LoopbackServer and answer control commands on stdin."""
    from sftselect.testing import Fault, LoopbackServer, hashed_faults

    faults = None
    if args.fault_rate > 0:
        faults = hashed_faults(
            args.fault_rate,
            [Fault.rate_limit(retry_after=0), Fault.server_error(500)],
            random_state=args.seed,
        )
    with LoopbackServer(judge_reply, latency=args.latency, faults=faults, model=MODEL) as server:
        print(json.dumps({"base_url": server.base_url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                records = server.requests
                statuses: Counter[str] = Counter()
                ok: Counter[str] = Counter()
                for r in records:
                    fault = r.fault
                    status = (
                        "200"
                        if fault is None
                        else str(
                            fault.status if fault.kind in ("status", "malformed") else fault.kind
                        )
                    )
                    statuses[status] += 1
                    if fault is None:
                        ok[r.prompt_key] += 1
                out = {
                    "request_count": len(records),
                    "max_in_flight": server.max_in_flight,
                    "statuses": dict(statuses),
                    "ok_per_prompt": dict(ok),
                    "cpu_s": time.process_time(),
                }
                print(json.dumps(out), flush=True)
            elif command == "reset":
                server.reset()
                print(json.dumps({"ok": True}), flush=True)
            elif command in ("quit", ""):
                break
    return 0


class JudgeServer:
    """The parent's handle on a judge server running in a child process."""

    def __init__(self, latency: float, fault_rate: float, seed: int) -> None:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--latency",
            repr(latency),
            "--fault-rate",
            repr(fault_rate),
            "--seed",
            str(seed),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        hello = self._read()
        self.base_url = hello["base_url"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the judge server exited (code {self.proc.poll()})")
        return json.loads(line)

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> JudgeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- helpers -------------------------------------------------------------------
def record(name: str, value: str, target: str, ok: bool | None) -> None:
    RESULTS.append({"name": name, "value": value, "target": target, "ok": ok})


def load_rows(data_dir: str, rows: int, seed: int) -> tuple[Any, str]:
    """``rows`` real Alpaca records (a seeded sample of the offline pool), and where from."""
    import numpy as np

    from sftselect import load_sample
    from sftselect.data.reference import build_alpaca_pool

    try:
        pool = build_alpaca_pool(data_dir)
        source = f"build_alpaca_pool({data_dir!r}): {len(pool):,} records"
    except FileNotFoundError:
        pool = load_sample()
        source = f"load_sample(): {len(pool):,} records ({data_dir} absent)"
    n = min(rows, len(pool))
    if n < rows:
        print(f"note: only {len(pool):,} records available; rating {n:,}, not {rows:,}")
    idx = np.sort(np.random.default_rng(seed).choice(len(pool), size=n, replace=False))
    return pool.select(idx).flatten_indices(), source


def make_backend(base_url: str, concurrency: int, seed: int) -> Any:
    from sftselect.backends.openai_compat import OpenAICompatibleBackend

    return OpenAICompatibleBackend(
        MODEL,
        base_url=base_url,
        api_key_env=NO_KEY_ENV,
        max_concurrency=concurrency,
        random_state=seed,
    )


def make_selector(backend: Any, cache: str, concurrency: int) -> Any:
    from sftselect.selectors.quality import QualitySelector

    return QualitySelector(backend, min_score=4.5, cache=cache, max_concurrency=concurrency)


def server_prompt_key(request: Any) -> str:
    """The key the loopback server files a request's messages under."""
    from sftselect.testing import prompt_key

    return prompt_key({"messages": request.message_dicts()})


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


# -- measuring ------------------------------------------------------------------
def sched_self() -> tuple[float, float]:
    """(CPU seconds, seconds spent runnable but waiting for a CPU) of this process's threads.

    From ``/proc/self/task/*/schedstat``; the wait is what other processes on the
    machine cost this one. NaN wait where the kernel does not expose it.
    """
    cpu = wait = 0.0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as fh:
                fields = fh.read().split()
            cpu += int(fields[0]) / 1e9
            wait += int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return time.process_time(), float("nan")
    return cpu, wait


class Timed:
    """Wall, CPU and run-queue wait of the block, for this process (and the server's CPU)."""

    def __init__(self, server: JudgeServer | None = None) -> None:
        self.server = server

    def __enter__(self) -> Timed:
        self._server_cpu = self.server.stats()["cpu_s"] if self.server else 0.0
        self._cpu, self._wait = sched_self()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        cpu, wait = sched_self()
        self.cpu, self.wait = cpu - self._cpu, wait - self._wait
        self.server_stats = self.server.stats() if self.server else {}
        self.server_cpu = self.server_stats.get("cpu_s", 0.0) - self._server_cpu

    def line(self, n: int) -> str:
        text = (
            f"wall {fmt_s(self.wall)}, client CPU {self.cpu:.2f} s "
            f"({self.cpu / max(n, 1) * 1e3:.2f} ms/request, {self.cpu / self.wall:.0%} of wall), "
            f"client waiting for a CPU {self.wait:.2f} s (busy or waiting "
            f"{(self.cpu + self.wait) / self.wall:.0%} of wall)"
        )
        if self.server is not None:
            text += f", server CPU {self.server_cpu:.2f} s"
        return text


def best_of(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# -- 1. the sequential baseline ------------------------------------------------
def sequential_baseline(base_url: str, requests: list, seed: int) -> list:
    """One request at a time, as the reference scripts do; the parsed scores."""
    from sftselect.scoring.rating import parse_rating

    backend = make_backend(base_url, 1, seed)

    async def loop() -> list:
        scores = []
        for request in requests:
            reply = await backend.chat(request)
            scores.append(parse_rating(reply.text, (0, 5)).value)
        return scores

    return asyncio.run(loop())


# -- where the time goes ---------------------------------------------------------
def fresh_costs(planner: Any, requests: list, tmp: str) -> dict[str, float]:
    """Client CPU of the non-HTTP parts of a fresh rating run, measured apart (seconds)."""
    from sftselect.backends.base import ChatReply
    from sftselect.backends.cache import ReplyCache
    from sftselect.scoring.rating import parse_rating

    identity = planner.judge.identity
    keys = [r.cache_key(identity) for r in requests]
    replies = [
        ChatReply(judge_reply({"messages": r.message_dicts()}), 600, 40, "stop", MODEL)
        for r in requests
    ]
    out: dict[str, float] = {}
    cache = ReplyCache(os.path.join(tmp, "costs.sqlite"))
    cache.get_many([])
    t0 = time.perf_counter()
    for key, r, reply in zip(keys, requests, replies):
        cache.put(key, identity, r, reply)
    out["ReplyCache.put: INSERT + commit per reply"] = time.perf_counter() - t0
    cache.close()
    backend = planner.judge
    out["backend.request_body + JSON encode"] = best_of(
        lambda: [json.dumps(backend.request_body(r)).encode() for r in requests], 3
    )
    out["parse_rating"] = best_of(lambda: [parse_rating(r.text, (0, 5)) for r in replies], 3)
    return out


def cached_costs(planner: Any, dataset: Any, requests: list, cache_path: str) -> dict[str, float]:
    """What a fully cached run spends its time on (best of 3, seconds)."""
    from sftselect.backends.base import request_keys
    from sftselect.backends.cache import ReplyCache
    from sftselect.scoring.rating import parse_rating

    identity = planner.judge.identity
    keys = [r.cache_key(identity) for r in requests]
    found = ReplyCache(cache_path).get_many(keys)
    replies = [found.get(k) for k in keys]
    out: dict[str, float] = {}
    prompt, decoding, rows, fields = planner._inputs(dataset)
    digest = planner._digest(prompt, decoding, rows, fields)
    cache = ReplyCache(cache_path)
    out["read the fields (_inputs)"] = best_of(lambda: planner._inputs(dataset), 3)
    out["plan digest (Arrow buffers, SHA-256)"] = best_of(
        lambda: planner._digest(prompt, decoding, rows, fields), 3
    )
    out["ReplyCache.plan_replies (one join)"] = best_of(lambda: cache.plan_replies(digest), 3)
    out["parse_rating"] = best_of(
        lambda: [parse_rating(r.text, (0, 5)) for r in replies if r is not None], 3
    )
    out["(rendering path) build requests (_render)"] = best_of(
        lambda: planner._render(prompt, decoding, rows, fields), 3
    )
    out["(rendering path) cache keys (length-prefixed SHA-256)"] = best_of(
        lambda: request_keys(requests, identity), 3
    )
    out["(rendering path) ReplyCache.get_many (all keys)"] = best_of(
        lambda: cache.get_many(keys), 3
    )
    cache.close()
    return out


def http_layers(
    server: JudgeServer, dataset: Any, requests: list, args: argparse.Namespace, tmp: str
) -> list[tuple[str, Timed]]:
    """The fresh rating run rebuilt layer by layer, each layer's wall and client CPU."""
    from sftselect.backends.cache import ReplyCache
    from sftselect.backends.openai_compat import httpx
    from sftselect.backends.runner import run_requests

    conc = args.concurrency
    planner = make_selector(make_backend(server.base_url, conc, args.seed), "", 1)
    bodies = [planner.judge.request_body(r) for r in requests]
    url = server.base_url.rstrip("/") + "/chat/completions"

    async def raw() -> None:
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
            todo = iter(bodies)

            async def worker() -> None:
                for body in todo:
                    response = await client.post(url, json=body)
                    response.json()

            await asyncio.gather(*(worker() for _ in range(conc)))

    layers = [
        (
            f"{httpx.__name__}.AsyncClient.post + .json(), {conc} workers",
            lambda i: asyncio.run(raw()),
        ),
        (
            "+ OpenAICompatibleBackend.chat + run_requests, no cache",
            lambda i: run_requests(
                make_backend(server.base_url, conc, args.seed), requests, max_concurrency=conc
            ),
        ),
        (
            "+ ReplyCache (INSERT + commit per reply)",
            lambda i: run_requests(
                make_backend(server.base_url, conc, args.seed),
                requests,
                cache=ReplyCache(os.path.join(tmp, f"layer-{i}.sqlite")),
                max_concurrency=conc,
            ),
        ),
        (
            "+ QualitySelector (plan, parse, select) = run 1",
            lambda i: make_selector(
                make_backend(server.base_url, conc, args.seed),
                os.path.join(tmp, f"layer-sel-{i}.sqlite"),
                conc,
            ).run(dataset),
        ),
    ]
    best: dict[str, Timed] = {}
    for i in range(args.layer_repeats):  # interleaved, so background load hits every layer
        for name, fn in layers:
            server.reset()
            with Timed(server) as t:
                fn(i)
            if name not in best or t.cpu < best[name].cpu:
                best[name] = t
    return [(name, best[name]) for name, _ in layers]


def profile_run(selector_factory: Any, dataset: Any, top: int) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    selector_factory().run(dataset)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    return buf.getvalue()


def print_costs(title: str, costs: dict[str, float], n: int) -> None:
    print(title)
    for name, secs in costs.items():
        print(f"    {name:<44} {fmt_s(secs):>10}  ({secs / n * 1e3:.3f} ms/request)")


# -- main ----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--sequential-sample", type=int, default=200)
    p.add_argument("--full-sequential", action="store_true", help="time the baseline on all rows")
    p.add_argument("--fault-rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="runs of [2] and [3]; the best counts")
    p.add_argument("--layer-repeats", type=int, default=2)
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--profile", action="store_true", help="always break the costs down")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return serve(args)

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import numpy as np

    from sftselect.backends.cache import ReplyCache
    from sftselect.scoring.rating import parse_rating

    repeats = max(1, args.repeats)
    load = os.getloadavg()
    print(
        f"bench_quality: python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"(load average {load[0]:.2f} at start), rows={args.rows:,} latency={args.latency:g}s "
        f"concurrency={args.concurrency} fault_rate={args.fault_rate:g} seed={args.seed} "
        f"repeats={repeats}"
    )
    dataset, source = load_rows(args.data_dir, args.rows, args.seed)
    print(f"data: {len(dataset):,} rows, a seeded sample of {source}")
    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench_quality_")
    tmp = tmp_ctx.name

    with JudgeServer(args.latency, 0.0, args.seed) as server:
        print(f"judge server: a separate process (pid {server.proc.pid}) at {server.base_url}")
        planner = make_selector(make_backend(server.base_url, args.concurrency, args.seed), "", 1)
        planner.cache = None
        requests = planner.requests(dataset)
        identity = planner.judge.identity
        distinct_keys = {r.cache_key(identity) for r in requests}
        n_distinct = len(distinct_keys)
        print(f"requests: {len(requests):,} ({n_distinct:,} distinct)")

        # 1 and 2: the baseline and the selector, warmed, interleaved, repeated alike ----
        sample = requests if args.full_sequential else requests[: args.sequential_sample]
        n_seq = len(sample)
        # Untimed warm-up of both sides (imports, connection set-up, SQLite, first
        # allocations), so that neither pays start-up costs inside a timed run.
        sequential_baseline(server.base_url, sample[: min(8, n_seq)], args.seed)
        warm_cache = os.path.join(tmp, "warm-up.sqlite")
        make_selector(
            make_backend(server.base_url, args.concurrency, args.seed), warm_cache, args.concurrency
        ).run(dataset)
        floor = n_distinct / args.concurrency * args.latency
        print(
            f"\n[1] sequential baseline (max_concurrency=1, one request at a time) on {n_seq:,} "
            f"requests and [2] QualitySelector (concurrency {args.concurrency}, a fresh SQLite "
            f"cache each run; latency floor {n_distinct:,} / {args.concurrency} x "
            f"{args.latency:g} s = {fmt_s(floor)}): both warmed up untimed, then {repeats} rounds, "
            "the order alternating between rounds; the best of each side counts"
        )
        seq_runs: list[Timed] = []
        seq_results: list[list] = []
        runs1: list[Timed] = []
        sel1 = None
        counts1 = []
        cache_path = os.path.join(tmp, "ratings-0.sqlite")
        for i in range(repeats):
            for side in ("baseline", "selector") if i % 2 == 0 else ("selector", "baseline"):
                server.reset()
                if side == "baseline":
                    with Timed(server) as t:
                        seq_results.append(sequential_baseline(server.base_url, sample, args.seed))
                    seq_runs.append(t)
                    print(
                        f"    round {i + 1}, [1] baseline: {t.line(n_seq)}; server: "
                        f"{t.server_stats['request_count']:,} requests"
                    )
                    continue
                backend = make_backend(server.base_url, args.concurrency, args.seed)
                with Timed(server) as t:
                    sel = make_selector(
                        backend, os.path.join(tmp, f"ratings-{i}.sqlite"), args.concurrency
                    ).run(dataset)
                runs1.append(t)
                counts1.append(t.server_stats["request_count"])
                sel1 = sel1 or sel
                print(
                    f"    round {i + 1}, [2] selector: {t.line(n_distinct)}; server: "
                    f"{counts1[-1]:,} requests, max {t.server_stats['max_in_flight']} in flight"
                )
        assert sel1 is not None
        seq_scores = seq_results[0]
        seq_best = min(t.wall for t in seq_runs)
        per_request = seq_best / n_seq
        extrapolated = n_seq < n_distinct
        seq_total = per_request * n_distinct if extrapolated else seq_best
        how = (
            f"extrapolated linearly from {n_seq:,} timed requests (best of {repeats})"
            if extrapolated
            else f"measured on all {n_seq:,} requests (best of {repeats})"
        )
        print(
            f"    [1] per request: {per_request * 1e3:.2f} ms = {args.latency * 1e3:.0f} ms server "
            f"latency + {per_request * 1e3 - args.latency * 1e3:.2f} ms client, HTTP and server work"
        )
        print(
            f"    [1] sequential time for the {n_distinct:,} distinct requests the selector sends: "
            f"{fmt_s(seq_total)} ({how})"
        )
        run1_s = min(t.wall for t in runs1)
        run1_med = float(np.median([t.wall for t in runs1]))
        speedup1 = seq_total / run1_s
        print(
            f"    [2] best {fmt_s(run1_s)} ({n_distinct / run1_s:,.0f} requests/s), median "
            f"{fmt_s(run1_med)}; speed-up vs sequential: {speedup1:.1f}x (median "
            f"{seq_total / run1_med:.1f}x)"
        )
        print(f"    run report: {sel1.extra.get('rating')}")
        print(
            f"    kept {len(sel1.indices):,} of {len(dataset):,} rows (score >= 4.5); scores: "
            f"{dict(sorted(Counter(sel1.scores.tolist()).items()))}"
        )
        same_as_seq = bool(
            all(r == seq_scores for r in seq_results)
            and np.array_equal(sel1.scores[:n_seq], np.array(seq_scores, dtype=float))
            and all(s == judge_score(r.messages[-1][1]) for r, s in zip(sample, seq_scores))
        )
        print(f"    scores equal the sequential baseline's on its {n_seq:,} rows: {same_as_seq}")
        record(
            "[2] selector vs sequential",
            f"{speedup1:.1f}x ({fmt_s(run1_s)} vs {fmt_s(seq_total)}"
            + (f", extrapolated from {n_seq:,} timed)" if extrapolated else ")"),
            ">= 40x",
            speedup1 >= 40,
        )
        record(
            "[2] same scores as the sequential baseline",
            f"{same_as_seq} (on its {n_seq:,} rows)",
            "True",
            same_as_seq,
        )
        all_rated = bool(np.isfinite(sel1.scores).all()) and all(c == n_distinct for c in counts1)
        record(
            "[2] one request per row, every row rated",
            f"{counts1[0]:,} requests, {int(np.isfinite(sel1.scores).sum()):,} scored",
            f"== {n_distinct:,}",
            all_rated,
        )

        # 3. the same selection again, same cache --------------------------------
        print("\n[3] the same selection again, on run 1's cache file")
        runs2: list[Timed] = []
        server.reset()
        sel2 = None
        for i in range(repeats):
            backend = make_backend(server.base_url, args.concurrency, args.seed)
            with Timed() as t:
                sel2 = make_selector(backend, cache_path, args.concurrency).run(dataset)
            runs2.append(t)
            print(f"    run {i + 1}: {t.line(n_distinct)}")
        sent2 = server.stats()["request_count"]
        run2_s = min(t.wall for t in runs2)
        speedup2 = run1_s / run2_s
        print(
            f"    best {fmt_s(run2_s)}; server saw {sent2} requests in {repeats} runs; "
            f"{speedup2:.0f}x faster than run 1 (best vs best; median vs median "
            f"{run1_med / float(np.median([t.wall for t in runs2])):.0f}x)"
        )
        assert sel2 is not None
        same = bool(
            np.array_equal(sel1.indices, sel2.indices) and np.array_equal(sel1.scores, sel2.scores)
        )
        print(f"    report: {sel2.extra.get('rating')}")
        record("[3] cached re-run: requests to the server", str(sent2), "== 0", sent2 == 0)
        record(
            "[3] cached re-run vs run 1",
            f"{speedup2:.0f}x ({fmt_s(run2_s)} vs {fmt_s(run1_s)})",
            ">= 100x",
            speedup2 >= 100,
        )
        record("[3] cached re-run: same selection, scores", str(same), "True", same)
        # Run 1's time is set by the simulated latency, so the ratio above says little on
        # its own: the re-run's own cost per row, which no latency enters.
        record(
            "[3] cached re-run: its own cost per row",
            f"{run2_s / len(dataset) * 1e6:.1f} us/row ({fmt_s(run2_s)} / {len(dataset):,})",
            "reported",
            None,
        )

        # where the time goes ---------------------------------------------------
        if speedup1 < 40 or args.profile:
            print(
                f"\nwhere run 1's time goes: the run rebuilt layer by layer (best CPU of "
                f"{args.layer_repeats}, interleaved); a layer's cost is its CPU minus the one above"
            )
            rows = http_layers(server, dataset, requests, args, tmp)
            prev = 0.0
            for name, t in rows:
                delta = "" if prev == 0 else f", +{(t.cpu - prev) / n_distinct * 1e3:.3f} ms/req"
                print(
                    f"    {name:<58} wall {fmt_s(t.wall):>8}, CPU {t.cpu:5.2f} s "
                    f"({t.cpu / n_distinct * 1e3:.2f} ms/req{delta}), waiting for a CPU "
                    f"{t.wait:.2f} s, server CPU {t.server_cpu:.2f} s"
                )
                prev = t.cpu
            print_costs(
                f"  parts of it measured apart, for {n_distinct:,} requests:",
                fresh_costs(planner, requests, tmp),
                n_distinct,
            )
        if speedup2 < 100 or args.profile:
            costs = cached_costs(planner, dataset, requests, cache_path)
            print_costs(
                f"\nwhere run 2 (cached) goes, parts measured apart (best of 3), for "
                f"{n_distinct:,} requests:",
                costs,
                n_distinct,
            )
        if args.profile:

            def factory() -> Any:
                return make_selector(
                    make_backend(server.base_url, args.concurrency, args.seed),
                    os.path.join(tmp, f"profile-{time.monotonic_ns()}.sqlite"),
                    args.concurrency,
                )

            print("\ncProfile of one rating run on a fresh cache (by own time; inflated):")
            print(profile_run(factory, dataset, 30))

    # 4. under faults -------------------------------------------------------------
    with JudgeServer(args.latency, args.fault_rate, args.seed) as server:
        fault_cache = os.path.join(tmp, "ratings-faults.sqlite")
        backend = make_backend(server.base_url, args.concurrency, args.seed)
        # This server has another port, so another backend identity: the keys the cache
        # must hold are computed with it (not with run 1's).
        fault_keys = {r.cache_key(backend.identity) for r in requests}
        error = None
        print(
            f"\n[4] under faults: {args.fault_rate:.0%} of prompts (seeded hash) get 429 "
            "(Retry-After: 0) or 500 on their first attempt; fresh cache; retries on "
            f"(max_retries={backend.max_retries}, backoff_base={backend.backoff_base} s)"
        )
        with Timed(server) as t3:
            try:
                sel3 = make_selector(backend, fault_cache, args.concurrency).run(dataset)
            except Exception as exc:  # a report: the failure is shown and judged FAIL
                sel3, error = None, exc
        st3 = t3.server_stats
        if error is not None:
            print(f"    the run raised {type(error).__name__}: {error}")
        cache = ReplyCache(fault_cache)
        stored = list(cache.records())
        cache.close()
        keys = [r["key"] for r in stored]
        unparsed = sum(parse_rating(r["reply"], (0, 5)).value is None for r in stored)
        statuses = st3["statuses"]
        faulted = st3["request_count"] - statuses.get("200", 0)
        ok_counts = st3["ok_per_prompt"]
        want_prompts = {server_prompt_key(r) for r in requests}
        multi_ok = sum(c > 1 for c in ok_counts.values())
        missing_ok = len(want_prompts - set(ok_counts))
        retries = backend.stats.retries
        report_retries = sel3.extra.get("rating", {}).get("retries") if sel3 else None
        print(f"    {t3.line(n_distinct)}; {t3.wall / run1_s:.2f}x run 1's best fault-free time")
        print(
            f"    server: {st3['request_count']:,} requests, statuses "
            f"{dict(sorted(statuses.items()))}"
        )
        print(
            f"    retries: backend.stats.retries {retries}, run report {report_retries}; "
            f"faulted replies {faulted}"
        )
        print(
            f"    cache: {len(stored):,} rows, {len(set(keys)):,} distinct keys, {unparsed} "
            f"without a parsed score, {len(fault_keys - set(keys))} lost; expected "
            f"{n_distinct:,} distinct requests"
        )
        print(
            f"    prompts answered 200 more than once: {multi_ok}; never answered 200: {missing_ok}"
        )
        cache_ok = (
            error is None
            and len(stored) == n_distinct
            and set(keys) == fault_keys
            and unparsed == 0
        )
        record(
            "[4] faults: every record rated once in cache",
            f"{len(stored):,} rows, {unparsed} unparsed, {len(fault_keys - set(keys))} lost",
            f"{n_distinct:,}, 0, 0",
            cache_ok,
        )
        record(
            "[4] faults: prompts with >1 200 (none missing)",
            f"{multi_ok} ({missing_ok} missing)",
            "0 (0)",
            multi_ok == 0 and missing_ok == 0,
        )
        record(
            "[4] faults: retries == faulted replies",
            f"{retries} vs {faulted}",
            "equal, > 0",
            retries == faulted and faulted > 0,
        )
        if sel3 is not None:
            same3 = bool(np.array_equal(sel1.scores, sel3.scores))
            record("[4] faults: same scores as run 1", str(same3), "True", same3)
        record(
            "[4] faults: wall time",
            f"{fmt_s(t3.wall)} ({t3.wall / run1_s:.2f}x run 1)",
            "reported",
            None,
        )
    tmp_ctx.cleanup()

    load = os.getloadavg()
    print(f"\nsummary (load average {load[0]:.2f} at the end, on {os.cpu_count()} CPUs)")
    print(f"{'measure':<46} {'value':<36} {'target':<14} result")
    for r in RESULTS:
        verdict = "-" if r["ok"] is None else ("PASS" if r["ok"] else "FAIL")
        print(f"{r['name']:<46} {r['value']:<36} {r['target']:<14} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
