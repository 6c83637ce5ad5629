"""The CUDA paths on a real GPU: train (bf16, padded and packed), batched generation, embeddings.

Not a CI test (CI has no GPU): run by hand on a machine with one, e.g. the device
tool's H100. A LLaMA-architecture model (8 layers, d=512, random weights) with
the sample-trained SentencePiece tokenizer, so nothing is downloaded.

Checks, each printed as PASS/FAIL with what was measured:
* ``train`` on the GPU with ``bf16=True``: the model's parameters live on CUDA
  during training, the loss falls over 40 steps on the bundled sample's 256
  longest records, packed and unpacked; tokens/s for each;
* ``generate`` with ``device="cuda"``, ``dtype="bfloat16"``: batched answers
  equal one-prompt-at-a-time answers (greedy), and the speed-up of batching;
* ``HFEmbedder(device="cuda")`` gives the CPU's vectors to within bf16/fp32
  tolerance (fp32 here), and its rows/s;
* ``IFDSelector`` on the GPU (float32, batch 16) against Cherry LLM's own
  per-example loop (``tests/helpers/ifd_reference.py``) on the same model and
  records: every IFD within 1e-4 relative, the same eligible rows, and the
  speed-up (issue 13's target on a GPU: >= 5x).

    python benchmarks/gpu_check.py [--out DIR]

Status: written 2026-12-05 and not yet run on a GPU (the device machine asked
for was not lent that session); its first run is the next GPU session's first
step. On a machine without ``datasets``/``nltk``/``httpx2``, install their
wheels first (``pip download --no-deps --python-version 3.12 ...`` here, carried).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from sftselect import LengthSelector, load_sample
from sftselect.embedding import HFEmbedder
from sftselect.generate import generate
from sftselect.testing import sample_tokenizer
from sftselect.train import TrainConfig, train

results: list[dict] = []


def verdict(name: str, ok: bool, **measured) -> None:
    results.append({"check": name, "pass": bool(ok), **measured})
    print(f"{'PASS' if ok else 'FAIL'} {name}: {json.dumps(measured)}", flush=True)


def model_for(tok, seed: int = 0) -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config)


def check_train(tok, data, out: Path) -> Path:
    saved = None
    for packing in (False, True):
        model = model_for(tok)
        config = TrainConfig(
            max_length=1024,
            packing=packing,
            max_steps=40,
            batch_size=16,
            micro_batch_size=8,
            learning_rate=1e-3,
            warmup_steps=4,
            bf16=True,
        )
        folder = out / f"model-packing-{packing}"
        result = train(model, data, folder, tokenizer=tok, config=config)
        log = json.loads((folder / "training_log.json").read_text())
        first, last = float(np.mean(result.losses[:5])), float(np.mean(result.losses[-5:]))
        verdict(
            f"train packing={packing} bf16 on cuda",
            log["device"].startswith("cuda") and last < first,
            device=log["device"],
            params_after=str(next(model.parameters()).device),
            loss_first5=round(first, 3),
            loss_last5=round(last, 3),
            seconds=round(result.train_seconds, 2),
            tokens_per_s=round(result.tokens_per_second),
        )
        saved = folder
    return saved


def check_generate(folder: Path, out: Path) -> None:
    answers = {}
    timing = {}
    for batch in (1, 16):
        path = out / f"answers-b{batch}.jsonl"
        start = time.perf_counter()
        generate(
            str(folder), "vicuna", path, device="cuda", dtype="bfloat16",
            batch_size=batch, max_new_tokens=64, limit=32,
        )  # fmt: skip
        timing[batch] = time.perf_counter() - start
        answers[batch] = [json.loads(line)["answer"] for line in path.read_text().splitlines()]
    same = sum(a == b for a, b in zip(answers[1], answers[16]))
    verdict(
        "generate batched on cuda (bf16, greedy)",
        len(answers[16]) == 32 and same >= 30,
        identical_to_one_at_a_time=f"{same}/32",
        one_at_a_time_s=round(timing[1], 2),
        batched_s=round(timing[16], 2),
        speedup=round(timing[1] / timing[16], 2),
    )


def check_embed(folder: Path, texts: list[str]) -> None:
    cpu = HFEmbedder(str(folder), pooling="mean", device="cpu", dtype="float32").embed(texts)
    gpu_embedder = HFEmbedder(str(folder), pooling="mean", device="cuda", dtype="float32")
    start = time.perf_counter()
    gpu = gpu_embedder.embed(texts)
    seconds = time.perf_counter() - start
    err = float(np.max(np.abs(cpu - gpu)) / max(np.max(np.abs(cpu)), 1e-12))
    verdict(
        "HFEmbedder on cuda equals cpu",
        err < 1e-3,
        max_relative_error=err,
        rows=len(texts),
        rows_per_s=round(len(texts) / seconds, 1),
    )


def check_ifd(folder: Path, records: list[dict], device: str = "cuda") -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from datasets import Dataset
    from tests.helpers import ifd_reference as ref

    from sftselect.models.logprobs import LogProbScorer
    from sftselect.selectors.ifd import IFDSelector

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    tok = transformers.AutoTokenizer.from_pretrained(folder)
    net = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    net = net.to(device).eval()
    ds = Dataset.from_list(records)
    scorer = LogProbScorer(net, tok, batch_size=16, show_progress=False)
    sel = IFDSelector(scorer, k=None, show_progress=False)
    ref.cherry_reference(tok, net, records[:4], 512)  # warm both sides
    sel.score(ds.select(range(4)))
    sync()
    t0 = time.perf_counter()
    want = ref.cherry_reference(tok, net, records, 512)
    sync()
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = sel.score(ds)
    sync()
    t_ours = time.perf_counter() - t0
    want = np.array([np.nan if v is None else v for v in want])
    kept = ~np.isnan(want)
    rel = float(np.max(np.abs(got[kept] - want[kept]) / np.abs(want[kept])))
    same = sel.select_indices(ds).tolist() == np.flatnonzero(kept).tolist()
    verdict(
        f"ifd_{device}_vs_cherry_loop",
        rel <= 1e-4 and same and t_ref / t_ours >= 5.0,
        records=len(records),
        reference_s=round(t_ref, 2),
        sftselect_s=round(t_ours, 2),
        speedup=round(t_ref / t_ours, 2),
        max_rel_diff=rel,
        same_eligible_rows=bool(same),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    print(torch.__version__, transformers.__version__, torch.cuda.get_device_name(0), flush=True)
    tok = sample_tokenizer(out / "tok")
    pool = load_sample()
    data = LengthSelector(k=256, unit="words").select(pool)
    folder = check_train(tok, data, out)
    check_generate(folder, out)
    check_embed(folder, [r["instruction"] + "\n" + r["input"] for r in pool.select(range(512))])
    fields = ("instruction", "input", "output")
    check_ifd(folder, [{f: r[f] for f in fields} for r in pool.select(range(400)).to_list()])
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    print("ALL PASS" if all(r["pass"] for r in results) else "SOME FAILED")


if __name__ == "__main__":
    main()
