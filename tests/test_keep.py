"""What held when sftselect was tried as an attacker would (issue 19, "Keep"), kept so."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sftselect import load_sample
from tests.helpers.paths import REPO

SELECT_CODE = """
import json, sys
from sftselect import LengthSelector, RandomSelector, load_sample
pool = load_sample()
out = {
    "random": RandomSelector(50, random_state=0, stratify=None).select_indices(pool).tolist(),
    "length_random_ties": LengthSelector(300, unit="words", ties="random", random_state=0)
        .select_indices(pool).tolist(),
}
json.dump(out, sys.stdout)
"""


def test_the_same_seed_gives_the_same_rows_across_processes_and_hash_seeds():
    """Selections do not depend on Python's per-process string hashing."""
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", SELECT_CODE], env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1] and len(runs[0]["length_random_ties"]) == 300


def test_nothing_in_the_library_loads_a_pickle():
    """No cache or input is ever unpickled: no pickle/cloudpickle/dill load, no
    np.load(allow_pickle=True), no torch.load without weights_only=True."""
    offenders = []
    for path in sorted((REPO / "src" / "sftselect").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if name.endswith(("pickle.load", "pickle.loads", "dill.load", "dill.loads")):
                offenders.append(f"{path.name}:{node.lineno} {name}")
            if name.endswith("np.load") and keywords.get("allow_pickle") != "False":
                offenders.append(f"{path.name}:{node.lineno} {name} without allow_pickle=False")
            if name.endswith("torch.load") and keywords.get("weights_only") != "True":
                offenders.append(f"{path.name}:{node.lineno} {name} without weights_only=True")
    assert offenders == []


@pytest.mark.slow
def test_sigint_leaves_no_half_written_output(tmp_path):
    """Ctrl-C at any moment of a selection leaves either no output or the whole output
    (and its provenance), never a part; interrupted runs leave no stray temporary files."""
    pool = tmp_path / "pool.jsonl"
    rows = load_sample().to_list()
    with pool.open("w", encoding="utf-8") as fh:
        for copy in range(12):  # 24,000 rows: a write that takes a moment
            for row in rows:
                fh.write(json.dumps({**row, "copy": copy}) + "\n")
    command = [sys.executable, "-m", "sftselect.cli", "select", str(pool), "-k", "20000",
               "--unit", "words", "-q"]  # fmt: skip
    full = tmp_path / "full.jsonl"
    subprocess.run([*command, "-o", str(full)], check=True, capture_output=True)
    whole = full.read_bytes()
    start = time.monotonic()
    subprocess.run([*command, "-o", str(tmp_path / "timing.jsonl")], check=True)
    took = time.monotonic() - start
    for i, fraction in enumerate((0.3, 0.6, 0.8, 0.9, 0.97)):
        out = tmp_path / f"out{i}.jsonl"
        proc = subprocess.Popen([*command, "-o", str(out)], stderr=subprocess.PIPE)
        time.sleep(took * fraction)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        if out.exists():
            assert out.read_bytes() == whole, f"interrupted at {fraction:.0%}: partial output"
        else:
            assert not Path(f"{out}.provenance.json").exists()
    stray = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert stray == []
