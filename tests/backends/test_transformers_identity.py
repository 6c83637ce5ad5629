"""TransformersChatBackend's default identity for a local model: one name for every spelling
of one path, a new name when the files that decide the replies change, a hub name as given;
and a judge whose weights were rewritten is not answered from the old judge's cache."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sftselect.backends import ChatRequest, MemoryCache, run_requests  # noqa: E402
from sftselect.backends.transformers_chat import TransformersChatBackend  # noqa: E402


def _identity(model, **kw) -> str:
    return TransformersChatBackend(model, dtype="float32", **kw).identity


def _write(path: Path, data: bytes) -> None:
    """Rewrite ``path`` and move its mtime on by 1 s, as a later write would."""
    st = path.stat() if path.exists() else None
    path.write_bytes(data)
    if st is not None:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A model folder ``m`` (not loadable: the identity loads nothing), cwd beside it."""
    m = tmp_path / "m"
    m.mkdir()
    for name, data in (
        ("config.json", b"{}"),
        ("model.safetensors", b"w" * 64),
        ("tokenizer.json", b"{}"),
        ("generation_config.json", b"{}"),
        ("chat_template.jinja", b"{{ messages }}"),
        ("README.md", b"notes"),
    ):
        (m / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    return m


def test_spellings_of_one_folder_are_one_identity(folder):
    ids = {_identity(s) for s in ("m", "./m", "m/", "./m/", Path("m"), str(folder), folder)}
    os.chdir("m")
    ids |= {_identity(s) for s in ("../m", "../m/", ".")}
    assert len(ids) == 1, ids
    (identity,) = ids
    assert re.fullmatch(
        rf"transformers/{re.escape(str(folder))};files=[0-9a-f]{{16}};dtype=float32", identity
    ), identity


@pytest.mark.parametrize(
    "name", ["model.safetensors", "config.json", "tokenizer.json", "generation_config.json",
             "chat_template.jinja", "model-00002-of-00002.safetensors"],
)  # fmt: skip
def test_rewriting_a_file_that_decides_the_replies_changes_the_identity(folder, name):
    before = _identity("m")
    path = folder / name
    _write(path, (path.read_bytes() if path.exists() else b"") + b"\n")
    assert _identity("m") != before
    assert _identity("./m") == _identity("m")  # the spellings still agree


def test_same_size_rewrite_is_seen_through_the_mtime_and_unrelated_files_are_not(folder):
    before = _identity("m")
    _write(folder / "README.md", b"other notes, longer")
    assert _identity("m") == before
    _write(folder / "model.safetensors", b"v" * 64)  # same size, later mtime
    assert _identity("m") != before


def test_a_gguf_file_is_one_identity_and_other_gguf_files_do_not_count(folder):
    (folder / "a.Q4.gguf").write_bytes(b"a" * 32)
    (folder / "b.Q8.gguf").write_bytes(b"b" * 32)
    ids = {
        _identity("m/a.Q4.gguf"),
        _identity("./m/a.Q4.gguf"),
        _identity(folder / "a.Q4.gguf"),
        _identity("m", gguf_file="a.Q4.gguf"),
        _identity("m/", gguf_file="a.Q4.gguf"),
    }
    assert len(ids) == 1, ids
    (identity,) = ids
    assert identity.startswith(f"transformers/{folder};gguf=a.Q4.gguf;files=")
    assert _identity("m", gguf_file="b.Q8.gguf") != identity
    _write(folder / "b.Q8.gguf", b"c" * 40)
    _write(folder / "model.safetensors", b"c" * 40)  # not read with a GGUF file
    assert _identity("m/a.Q4.gguf") == identity
    _write(folder / "tokenizer.json", b'{"v": 2}')  # transformers reads the folder's tokenizer
    assert _identity("m/a.Q4.gguf") != identity
    changed = _identity("m/a.Q4.gguf")
    _write(folder / "a.Q4.gguf", b"A" * 32)
    assert _identity("m/a.Q4.gguf") != changed


def test_tokenizer_path_is_absolute_and_fingerprinted_and_a_hub_name_is_kept(folder, tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_bytes(b"{}")
    first = _identity("org/model", tokenizer="tok")
    assert first == _identity("org/model", tokenizer=str(tok) + "/")
    assert first.startswith(f"transformers/org/model;tokenizer={tok};tokenizer_files=")
    _write(tok / "tokenizer.json", b'{"a": 1}')
    assert _identity("org/model", tokenizer="./tok") != first
    assert _identity("org/model", tokenizer="org/tok") == (
        "transformers/org/model;tokenizer=org/tok;dtype=float32"
    )
    assert _identity("org/model") == "transformers/org/model;dtype=float32"
    assert TransformersChatBackend("m", identity="mine").identity == "mine"


def test_new_weights_in_the_same_folder_are_not_answered_from_the_old_cache(tmp_path):
    """The reviewer's case: a cache filled by one checkpoint, then other weights saved to the
    same folder; the second judge must generate (no cache hit) and its replies are its own."""
    from sftselect.testing import tiny_llama
    from tests.helpers.tiny_llama import spm_tokenizer

    folder = tmp_path / "judge"
    tok = spm_tokenizer(folder)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    tok.save_pretrained(folder)
    cache = MemoryCache()
    reqs = [ChatRequest.user(p, max_tokens=6) for p in ("Hi", "Name three colours.")]
    runs = []
    for seed in (0, 1):
        tiny_llama(tok, context=256, random_state=seed).save_pretrained(folder)
        backend = TransformersChatBackend(str(folder), device="cpu", dtype="float32")
        result = run_requests(backend, reqs, cache=cache)
        fresh = TransformersChatBackend(str(folder), device="cpu", dtype="float32")
        uncached = [asyncio.run(fresh.chat(r)).text for r in reqs]
        backend.close()
        fresh.close()
        runs.append((backend.identity, result, uncached))
    (id0, r0, _), (id1, r1, uncached1) = runs
    assert r0.report.sent == len(reqs) and r0.report.cache_hits == 0
    assert id0 != id1
    assert r1.report.sent == len(reqs) and r1.report.cache_hits == 0
    assert [reply.text for reply in r1.replies] == uncached1
