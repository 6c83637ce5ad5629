"""`sftselect select --engine ray` for the embedding and model-scored selectors: the files
one machine writes (rows, provenance, per-row table, picture), on one shared Ray instance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

from sftselect import load_sample  # noqa: E402
from sftselect.cli import main  # noqa: E402
from sftselect.testing import sample_tokenizer, tiny_llama  # noqa: E402
from tests.helpers.paths import REPO  # noqa: E402

N_ROWS = 40
#: What a run on Ray records differently, by design: when and how long, where the output
#: went, what ran where, and the in-memory dataset's fingerprint and content hash (the rows
#: stay on the cluster; the input file's sha256 is recorded by both).
ENGINE_FIELDS = ("created", "seconds", "output", "engine")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The tiny random LLaMA of sftselect.testing saved as a checkpoint folder: an
    ``--embed-model`` (hidden states, 32 dimensions) and a ``--model`` for log-probs."""
    folder = tmp_path_factory.mktemp("tiny")
    tok = sample_tokenizer(folder)
    tiny_llama(tok, context=256).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """The first rows of the bundled sample as JSON Lines (read in parallel by Ray), with a
    weight column for facility location."""
    rows = load_sample().select(range(N_ROWS)).to_list()
    for i, row in enumerate(rows):
        row["w"] = 0.5 + (i % 5) / 4
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("targets") / "haiku.jsonl"
    rows = [
        {"instruction": "Write a haiku about autumn.", "output": "Leaves fall."},
        {"instruction": "Write a haiku about the sea.", "output": "Waves."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(argv: list[str], out: Path, *extra: str) -> None:
    assert main(["select", *argv, "-o", str(out), "-q", *extra]) == 0


def _record(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".provenance.json").read_text())


def _comparable(record: dict) -> dict:
    """The record without the fields an engine sets by design (see ENGINE_FIELDS)."""
    kept = {k: v for k, v in record.items() if k not in ENGINE_FIELDS}
    kept["input"] = {
        k: v for k, v in record["input"].items() if k not in ("fingerprint", "content_sha256")
    }
    return kept


def _embedding_case(name: str, targets: Path) -> list[str]:
    return {
        "diversity": ["--n-clusters", "3", "--seed", "0", "--cluster-column", "cluster"],
        "kcenter": ["--seed", "0"],
        "facility-location": ["--refine", "swap", "--weights-column", "w", "--seed", "0"],
        "targeted": ["--targets", "testset:vicuna", str(targets)],
        "repr-filter": ["--max-similarity", "0.999"],
    }[name]


@pytest.mark.parametrize(
    "name", ["diversity", "kcenter", "facility-location", "targeted", "repr-filter"]
)
def test_embedding_selectors_on_ray_write_the_one_machine_files(
    ray_local, model_dir, pool, targets, tmp_path, name
):
    """Each embedding selector with --engine ray writes the rows, the per-row table, the
    picture and the provenance record (selector parameters, embedder identity, input
    sha256, indices, details) of a run on one machine."""
    argv = [str(pool), "--selector", name, "-k", "6", "--embed-model", str(model_dir)]
    argv += ["--embed-max-length", "48", "--device", "cpu", *_embedding_case(name, targets)]
    one, dist = tmp_path / "one", tmp_path / "ray"
    one.mkdir(), dist.mkdir()
    _run(argv, one / "out.jsonl", "--plot", str(one / "pca.png"))
    _run(
        argv,
        dist / "out.jsonl",
        "--plot",
        str(dist / "pca.png"),
        "--engine",
        "ray",
        "--workers",
        "1",
    )
    assert (dist / "out.jsonl").read_bytes() == (one / "out.jsonl").read_bytes()
    assert len((one / "out.jsonl").read_text().splitlines()) == 6
    assert (dist / "pca.png").read_bytes() == (one / "pca.png").read_bytes()
    tables = sorted(p.name for p in one.glob("out.jsonl.*.csv"))
    assert sorted(p.name for p in dist.glob("out.jsonl.*.csv")) == tables
    for table in tables:
        assert (dist / table).read_bytes() == (one / table).read_bytes()
    a, b = _record(one / "out.jsonl"), _record(dist / "out.jsonl")
    assert b["input"]["sha256"] == a["input"]["sha256"] is not None
    assert a["params"]["embedder"].startswith("HFEmbedder('hf:") and "engine" not in a
    assert b["details"]["embedder"] in a["params"]["embedder"]
    if name == "diversity":
        assert tables == ["out.jsonl.rows.csv"]
        assert b["details"].pop("kmeans_sample_rows") == N_ROWS  # the sample is the pool
        assert all("cluster" in json.loads(r) for r in (dist / "out.jsonl").open())
    if name == "targeted":
        assert b["details"]["tasks"] == ["vicuna", "haiku"]
    assert _comparable(b) == _comparable(a)
    stages = [s["name"] for s in b["engine"]["stages"]]
    assert any(s.startswith(("embed", "gather")) for s in stages), stages


def test_the_embedding_cache_is_shared_by_the_actors(ray_local, model_dir, pool, tmp_path):
    """--embed-cache on Ray: the actors write their blocks' vectors into the folder, and a
    second run reads them (nothing is embedded, so nothing is written again) for the same
    rows; the provenance names the folder as one machine's does."""
    cache = tmp_path / "cache"
    argv = [str(pool), "--selector", "kcenter", "-k", "5", "--seed", "0"]
    argv += ["--embed-model", str(model_dir)]
    argv += ["--embed-max-length", "48", "--device", "cpu", "--embed-cache", str(cache)]
    _run(argv, tmp_path / "a.jsonl", "--engine", "ray")
    entries = {p: p.stat().st_mtime_ns for p in cache.glob("*.npy")}
    assert entries
    _run(argv, tmp_path / "b.jsonl", "--engine", "ray")
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.npy")} == entries
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    _run(argv, tmp_path / "one.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    a, one = _record(tmp_path / "a.jsonl"), _record(tmp_path / "one.jsonl")
    assert a["params"]["cache_dir"] == one["params"]["cache_dir"] == str(cache.resolve())


def test_a_model_scored_selector_on_ray_writes_the_one_machine_files(
    ray_local, model_dir, pool, tmp_path
):
    """--selector perplexity --engine ray (scoring actors, each loading the model once):
    the rows and the provenance record of one machine, scores included."""
    argv = [str(pool), "--selector", "perplexity", "--model", str(model_dir), "-k", "7"]
    argv += ["--score-cache", str(tmp_path / "cache")]
    _run(argv, tmp_path / "one.jsonl")
    shutil.rmtree(tmp_path / "cache")  # the actors score every row again
    _run(argv, tmp_path / "ray.jsonl", "--engine", "ray")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    a, b = _record(tmp_path / "one.jsonl"), _record(tmp_path / "ray.jsonl")
    assert b["selector"] == "PerplexitySelector" and b["engine"]["stages"]
    assert a["details"]["n_cached"] == b["details"]["n_cached"] == 0
    assert _comparable(b) == _comparable(a)


def test_dry_run_of_a_model_scored_selector_stays_on_this_machine(
    model_dir, pool, tmp_path, capsys
):
    """--dry-run counts on this machine: with --engine ray it is refused in one line."""
    argv = ["select", str(pool), "-o", str(tmp_path / "o.jsonl"), "--selector", "ifd"]
    argv += ["--model", str(model_dir), "-k", "3", "--dry-run", "--engine", "ray"]
    argv += ["--score-cache", str(tmp_path / "cache")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "--dry-run counts requests on this machine; drop --engine ray" in err[0]
    )
    assert not (tmp_path / "o.jsonl").exists()


def test_no_text_says_the_command_line_refuses_embedding_selectors_on_ray(capsys):
    """The refusal is gone from the command line, and from what its help and docs say."""
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    help_text = "".join(capsys.readouterr().out.split())  # argparse wraps at hyphens too
    assert "embeddingselectorsdiversity,kcenter,facility-location,targeted,repr-filter" in help_text
    for path in (REPO / "README.md", REPO / "docs" / "cli.md", REPO / "docs" / "scaling.md"):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert "for the length, random, column and quality selectors" not in text, path
        assert "runs on this machine (drop --engine ray)" not in text, path
    source = (REPO / "src" / "sftselect" / "cli" / "selection.py").read_text(encoding="utf-8")
    assert "--engine ray runs the length, random, column and quality" not in source


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "cuda"], "--device cuda with --engine ray needs --num-gpus"),
        (["--num-gpus", "-1"], "--num-gpus must be a number >= 0; got -1.0"),
        (["--workers", "0"], "--workers must be a positive int; got 0"),
    ],
)
def test_what_cannot_run_on_ray_is_refused_in_one_line(
    pool, model_dir, tmp_path, capsys, extra, message
):
    """Refused before Ray starts or anything is written."""
    out = tmp_path / "o.jsonl"
    argv = ["select", str(pool), "-o", str(out), "--selector", "kcenter", "-k", "3"]
    argv += ["--embed-model", str(model_dir), "--engine", "ray", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_num_gpus_needs_ray_and_an_embedding_or_scoring_actor(pool, tmp_path, capsys):
    base = ["select", str(pool), "-o", str(tmp_path / "o.jsonl"), "-k", "3", "--num-gpus", "1"]
    assert main([*base, "--selector", "kcenter", "--embed-column", "v"]) == 2
    assert "--num-gpus reserves GPUs for Ray's actors; it needs --engine ray" in (
        capsys.readouterr().err
    )
    assert main([*base, "--selector", "ifd", "--model", "m"]) == 2
    assert "--num-gpus reserves GPUs for Ray's actors; it needs --engine ray" in (
        capsys.readouterr().err
    )
    assert main([*base, "--selector", "length", "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert "--num-gpus applies to --selector diversity, kcenter, facility-location, " in err
    assert ", ifd, superfiltering or perplexity; --selector length does not read it" in err


@pytest.mark.parametrize(("flag", "value"), [("--workers", "2"), ("--address", "auto")])
def test_ray_options_without_engine_ray_are_refused(pool, tmp_path, capsys, flag, value):
    """--workers and --address only mean something on Ray: given without --engine ray they
    were ignored in silence; now one line, and nothing written."""
    out = tmp_path / "o.jsonl"
    argv = ["select", str(pool), "-o", str(out), "-k", "3", flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} applies to --engine ray" in err[0], err
    assert not out.exists()


def test_a_local_judge_on_ray_is_refused(pool, tmp_path, capsys):
    """--local-judge with --engine ray loaded a model per actor on the actors' CPUs (Ray
    hides the GPUs from actors that reserve none, and --num-gpus is not for the judge):
    one line before anything is read or loaded, nothing written."""
    out = tmp_path / "o.jsonl"
    argv = ["select", str(pool), "-o", str(out), "-k", "3", "--selector", "quality"]
    assert main([*argv, "--local-judge", str(tmp_path / "judge.gguf"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--local-judge runs the judge in this process" in err[0], err
    assert not out.exists()


def test_num_gpus_reaches_the_embedding_actors(pool, model_dir, tmp_path, monkeypatch):
    """--num-gpus G is the GPUs each embedding actor reserves (run(num_gpus=G)); checked
    here on a stand-in for run, since this machine has no GPU for Ray to hand out."""
    import sftselect.distributed as sd

    seen = {}

    class Stop(Exception):
        pass

    def fake_run(selector, dataset, **options):
        seen.update(options, selector=selector)
        raise Stop

    monkeypatch.setenv("SFTSELECT_DEBUG", "1")  # let the stand-in's exception through
    monkeypatch.setattr(sd, "connect", lambda address: False)
    monkeypatch.setattr(sd, "read", lambda source, split: None)
    monkeypatch.setattr(sd, "run", fake_run)
    argv = ["select", str(pool), "-o", str(tmp_path / "o.jsonl"), "--selector", "diversity"]
    argv += ["-k", "3", "--embed-model", str(model_dir), "--device", "cuda", "--seed", "0"]
    with pytest.raises(Stop):
        main([*argv, "--engine", "ray", "--num-gpus", "0.5", "--workers", "4"])
    assert seen["num_gpus"] == 0.5 and seen["workers"] == 4
    assert seen["selector"].embedder.device == "cuda"


def test_num_gpus_reaches_the_scoring_actors_of_a_model_selector(
    pool, model_dir, tmp_path, monkeypatch
):
    """--num-gpus G with --selector ifd: run(num_gpus=G), which gives each scoring actor G
    GPUs (scores_on_device); --device cuda without it is refused in one line."""
    import sftselect.distributed as sd

    seen = {}

    class Stop(Exception):
        pass

    def fake_run(selector, dataset, **options):
        seen.update(options, selector=selector)
        raise Stop

    monkeypatch.setenv("SFTSELECT_DEBUG", "1")
    monkeypatch.setattr(sd, "connect", lambda address: False)
    monkeypatch.setattr(sd, "read", lambda source, split: None)
    monkeypatch.setattr(sd, "run", fake_run)
    argv = ["select", str(pool), "-o", str(tmp_path / "o.jsonl"), "--selector", "ifd", "-k", "3"]
    argv += ["--model", str(model_dir), "--engine", "ray"]
    with pytest.raises(Stop):
        main([*argv, "--num-gpus", "1", "--workers", "2"])
    assert seen["num_gpus"] == 1.0 and seen["workers"] == 2
    assert type(seen["selector"]).__name__ == "IFDSelector"
    monkeypatch.delenv("SFTSELECT_DEBUG")
    assert main([*argv, "--device", "cuda"]) == 2


def test_vectors_in_a_column_on_ray(ray_local, tmp_path):
    """--embed-column COL (no model): the column travels with the rows to the actors; the
    files and record of one machine."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = load_sample().select(range(N_ROWS)).to_list()
    for row in rows:
        row["v"] = rng.normal(size=8).round(4).tolist()
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = [str(src), "--selector", "kcenter", "-k", "5", "--seed", "0", "--embed-column", "v"]
    _run(argv, tmp_path / "one.jsonl")
    _run(argv, tmp_path / "ray.jsonl", "--engine", "ray")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    a, b = _record(tmp_path / "one.jsonl"), _record(tmp_path / "ray.jsonl")
    assert a["params"]["embedder"] == "PrecomputedEmbeddings('column:v')"
    assert _comparable(b) == _comparable(a)


def test_a_ray_instance_the_command_starts_is_shut_down_after_the_output_is_written(
    ray_local, tmp_path, monkeypatch
):
    """Without a running instance the command starts one and shuts it down when done: the
    selected rows are read from the cluster, so every file is written before the shutdown
    (stand-ins for connect and shutdown keep the shared instance)."""
    import sftselect.distributed as sd

    out = tmp_path / "o.jsonl"
    written_at_shutdown = []
    monkeypatch.setattr(sd, "connect", lambda address: True)  # "this call started Ray"
    monkeypatch.setattr(ray, "shutdown", lambda: written_at_shutdown.append(out.exists()))
    import numpy as np

    rng = np.random.default_rng(1)
    rows = load_sample().select(range(12)).to_list()
    for row in rows:
        row["v"] = rng.normal(size=4).round(4).tolist()
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = [str(src), "--selector", "kcenter", "-k", "3", "--seed", "0", "--embed-column", "v"]
    _run(argv, out, "--engine", "ray")
    assert written_at_shutdown == [True]
    assert len(out.read_text().splitlines()) == 3
