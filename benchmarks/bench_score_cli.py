"""Benchmark ``sftselect score`` end to end against a scripted judge: where the time
goes outside the requests.

Run from the repository root (with sftselect installed)::

    python benchmarks/bench_score_cli.py                  # 600 rows, 0.1 s latency, 64 in flight, 3 repeats
    python benchmarks/bench_score_cli.py --breakdown      # also time the phases of one run

The judge is :class:`sftselect.testing.LoopbackServer` (``reply=lambda body:
"4.5\\nok"``, ``latency`` seconds per request) in this process's threads on
127.0.0.1; each measured run is a fresh ``sftselect score`` process (``python
-m sftselect.cli score ROWS.jsonl -o OUT.jsonl --cache FRESH.sqlite
--max-concurrency 64 -q``) on the first ``--rows`` records of the bundled
Alpaca sample, so start-up, reading, the requests, the cache, writing the
output and the interpreter's exit all count.

Every number is measured in this run:

1. The lower bound: the start-up (an interpreter that imports what a score run
   needs, ``sftselect.cli`` and ``datasets``, then leaves with ``os._exit``;
   best of ``--repeats``) plus ``ceil(rows / concurrency) * latency``, the time
   the requests need with ``concurrency`` in flight and no client cost at all.
   A bound, not a run: no process can do better.
2. The previous code path, switched on in the same process: ``main(argv)``
   called from a script (the command line's path without :func:`gc.freeze`,
   see ``sftselect.cli.main``), with ``ReplyCache.put_many`` replaced by a loop
   that stores each reply with its own ``INSERT`` and commit, as the runner did
   before it wrote the replies of one turn of its event loop together.
3. ``python -m sftselect.cli score ...``: the command as users run it.

Runs of 2 and 3 are interleaved, ``--repeats`` each; every run is printed with
its wall time, its CPU time (user + system, from ``wait4``), and the load
average. Each run must rate every row (600 scores of 4.5 in the output) and
send every request once (the server's count). The script exits 0; it is a
report.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

#: The previous code path (see the module docstring, 2.).
PREVIOUS = textwrap.dedent(
    """
    import sys
    from sftselect.backends.cache import ReplyCache
    batched = ReplyCache.put_many
    def one_by_one(self, backend, items):  # one INSERT and one commit per reply, as before
        for item in items:
            batched(self, backend, [item])
    ReplyCache.put_many = one_by_one
    from sftselect.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)

#: One run with its phases timed (``--breakdown``): the functions wrapped print when they
#: start and end, relative to the moment the parent started the process.
BREAKDOWN = textwrap.dedent(
    """
    import os, sys, time
    t0 = float(os.environ["BENCH_T0"])
    marks = [("interpreter started", time.time() - t0)]
    def mark(name):
        marks.append((name, time.time() - t0))
    import sftselect.cli as cli
    mark("imported sftselect.cli")
    from sftselect.cli import selection
    from sftselect.data import io
    from sftselect.selectors import quality
    def wrap(owner, name, before, after):
        inner = getattr(owner, name)
        def wrapped(*a, **k):
            mark(before)
            try:
                return inner(*a, **k)
            finally:
                mark(after)
        setattr(owner, name, wrapped)
    wrap(selection, "_load", "parser built, datasets imported, judge set up", "rows read")
    wrap(quality, "run_requests", "requests built", "requests answered and cached")
    wrap(io, "save_data", "scores parsed, columns added", "output written")
    try:
        code = cli.main()
    finally:
        mark("main returned")
        sys.stderr.write(repr(marks) + "\\n")
    sys.exit(code)
    """
)


def serve(latency: float):
    from sftselect.testing import LoopbackServer

    return LoopbackServer(reply=lambda body: "4.5\nok", latency=latency).start()


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stderr of one child process."""
    with tempfile.TemporaryFile() as err_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, err


def check_output(path: Path, rows: int) -> None:
    scores = [json.loads(line)["quality_score"] for line in path.read_text().splitlines()]
    if len(scores) != rows or any(s != 4.5 for s in scores):
        raise SystemExit(f"{path}: expected {rows} scores of 4.5")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=600)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--breakdown", action="store_true", help="also time the phases of one run")
    args = p.parse_args(argv)

    from sftselect import load_sample

    tmp = Path(tempfile.mkdtemp(prefix="bench-score-"))
    rows = load_sample().select(range(args.rows))
    data = tmp / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    server = serve(args.latency)
    py = sys.executable
    print(
        f"sftselect score: {args.rows} rows of the bundled sample, latency {args.latency:g} s, "
        f"{args.concurrency} in flight; {platform.python_version()}, {os.cpu_count()} CPUs"
    )

    def score_args(name: str) -> list[str]:
        return [
            "score", str(data), "-o", str(tmp / f"{name}.jsonl"), "--cache",
            str(tmp / f"{name}.sqlite"), "--base-url", server.base_url, "--model", "judge",
            "--api-key-env", "", "--max-concurrency", str(args.concurrency), "-q",
        ]  # fmt: skip

    imports = "import sftselect.cli, datasets, os; os._exit(0)"
    startup = [run([py, "-c", imports])[0] for _ in range(args.repeats)]
    waves = math.ceil(args.rows / args.concurrency)
    bound = min(startup) + waves * args.latency
    print(
        f"\nlower bound: start-up {min(startup):.3f} s (best of "
        f"{', '.join(f'{s:.3f}' for s in startup)}; interpreter + imports, exit skipped) "
        f"+ {waves} waves x {args.latency:g} s = {bound:.3f} s"
    )

    ways = {
        "previous path": lambda name: [py, "-c", PREVIOUS, *score_args(name)],
        "sftselect score": lambda name: [py, "-m", "sftselect.cli", *score_args(name)],
    }
    results: dict[str, list[tuple[float, float, str]]] = {name: [] for name in ways}
    for i in range(args.repeats):
        for name, cmd in ways.items():
            tag = f"{name.split()[0]}-{i}"
            before = server.request_count
            wall, cpu, _ = run(cmd(tag))
            sent = server.request_count - before
            check_output(tmp / f"{tag}.jsonl", args.rows)
            if sent != args.rows:
                raise SystemExit(f"{name}: the server answered {sent} requests, not {args.rows}")
            results[name].append((wall, cpu, load()))
    width = 7 * args.repeats + 2
    print(f"\n{'run':17s} {'wall s, each run':{width}s} {'CPU s':{width}s} load (1/5/15 min)")
    for name, runs in results.items():
        walls = " ".join(f"{w:6.3f}" for w, _, _ in runs)
        cpus = " ".join(f"{c:6.2f}" for _, c, _ in runs)
        print(f"{name:17s} {walls:{width}s} {cpus:{width}s} {runs[-1][2]}")
    best = {name: min(w for w, _, _ in runs) for name, runs in results.items()}
    med = {name: statistics.median(w for w, _, _ in runs) for name, runs in results.items()}
    now, prev = best["sftselect score"], best["previous path"]
    print(
        f"\nbest of {args.repeats}: previous {prev:.3f} s, now {now:.3f} s "
        f"(median {med['previous path']:.3f} -> {med['sftselect score']:.3f}): "
        f"{prev / now:.2f}x faster, {prev - now:.3f} s less"
    )
    print(
        f"against the lower bound {bound:.3f} s: previous {prev / bound:.2f}x "
        f"(+{prev - bound:.3f} s), now {now / bound:.2f}x (+{now - bound:.3f} s)"
    )

    if args.breakdown:
        env = dict(os.environ, BENCH_T0=repr(time.time()))
        wall, _, err = run([py, "-c", BREAKDOWN, *score_args("breakdown")], env=env)
        marks = ast.literal_eval(err.strip().splitlines()[-1])  # the child's list of pairs
        marks.append(("process exited (parent)", wall))
        print("\none run, phase by phase (seconds from the process start):")
        last = 0.0
        for name, t in marks:
            print(f"  {t:7.3f}  +{t - last:6.3f}  {name}")
            last = t
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
