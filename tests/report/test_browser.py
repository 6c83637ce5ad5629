"""The report as a person sees it: built by the command line from the bundled sample and
three selections, opened in a real headless browser (Debian's ``chromium``; .ci/run
installs it), screenshotted, and its rendered page checked: no script error in the
console, every chart drawn, the overlap numbers equal to the selections', the search box
filtering the sampled rows. Skips with its reason where no chromium is installed."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sftselect import load_sample
from sftselect.cli import main
from sftselect.embedding import HashingEmbedder, example_texts

BROWSER = next(
    (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
    None,
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH (apt-get install chromium; .ci/run installs it)"
)


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",  # the CI container runs as root
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _open(url: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's script ran, and the console lines the browser logged."""
    done = _browser(["--dump-dom", url], profile)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


class _Page(HTMLParser):
    """What the rendered page shows: body attributes, overlap cells, sample rows."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.cells: dict[tuple[str, str], str] = {}
        self.only: dict[str, str] = {}
        self.charts: list[str] = []
        self.rows: list[dict[str, str]] = []
        self.shown = ""
        self._stack: list[str] = []
        self._key = self._only = None
        self._count = self._shown = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "body":
            self.body = a
        elif tag == "svg" and "chart" in classes:
            self.charts.append(a.get("data-drawn", "missing"))
        elif tag == "td" and "ov" in classes:
            self._key = (a["data-a"], a["data-b"])
        elif tag == "td" and "only" in classes:
            self._only = a["data-name"]
        elif tag == "span" and "count" in classes:
            self._count = True
        elif tag == "span" and a.get("id") == "shown":
            self._shown = True
        elif tag == "article" and "row" in classes:
            self.rows.append({"style": a.get("style", ""), "text": ""})

    def handle_data(self, data):
        if self.rows and not self.rows[-1].get("closed"):
            self.rows[-1]["text"] += data
        if self._count and self._key:
            self.cells[self._key] = data
            self._count = False
        elif self._only and data.strip():
            self.only[self._only] = data.strip()
            self._only = None
        elif self._shown:
            self.shown += data
            self._shown = False

    def handle_endtag(self, tag):
        if tag == "td":
            self._key = None
        if tag == "article" and self.rows:
            self.rows[-1]["closed"] = "1"


def _parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sample with a source column and hashing vectors; three selections by the
    command line (longest, random, k-center); the report over them."""
    tmp = tmp_path_factory.mktemp("report")
    pool = load_sample()
    X = HashingEmbedder(64).embed(example_texts(pool, "instruction_input", None))
    pool = pool.add_column("source", ["with input" if s else "no input" for s in pool["input"]])
    pool = pool.add_column("embedding", X.tolist())
    pool.to_parquet(tmp / "pool.parquet")
    p = str(tmp / "pool.parquet")
    common = ["-k", "150", "-q"]
    assert main(["select", p, "-o", str(tmp / "longest.jsonl"), "--unit", "words", *common]) == 0
    assert (
        main(
            [
                "select",
                p,
                "-o",
                str(tmp / "random.jsonl"),
                "--selector",
                "random",
                "--seed",
                "1",
                *common,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "select",
                p,
                "-o",
                str(tmp / "kcenter.jsonl"),
                "--selector",
                "kcenter",
                "--embed-column",
                "embedding",
                "--seed",
                "0",
                *common,
            ]
        )
        == 0
    )
    report = tmp / "report.html"
    assert (
        main(
            [
                "compare",
                p,
                str(tmp / "longest.jsonl"),
                str(tmp / "random.jsonl"),
                str(tmp / "kcenter.jsonl.provenance.json"),
                "--embed-column",
                "embedding",
                "-o",
                str(report),
                "-q",
            ]
        )
        == 0
    )
    records = {
        name: json.loads((tmp / f"{name}.jsonl.provenance.json").read_text())
        for name in ("longest", "random", "kcenter")
    }
    return tmp, report, records


def test_page_renders_without_error_with_every_chart(built):
    tmp, report, records = built
    dom, console = _open(report.as_uri(), tmp / "profile")
    page = _parse(dom)
    assert page.body.get("data-ready") == "yes", "the page's script did not finish"
    assert "data-script-errors" not in page.body and console == []
    scored = sum(r["scores"] is not None for r in records.values())
    # lengths (3) + scores (the length selector's) + the source column + maps (3)
    assert scored == 1 and len(page.charts) == 3 + scored + 1 + 3
    assert page.charts == ["yes"] * len(page.charts)
    assert page.body["data-charts"] == page.body["data-charts-drawn"] == str(len(page.charts))


def test_overlap_numbers_equal_the_selections(built):
    tmp, report, records = built
    dom, _ = _open(report.as_uri(), tmp / "profile")
    page = _parse(dom)
    sets = {n: set(r["indices"]) for n, r in records.items()}
    assert set(page.cells) == {(a, b) for a in sets for b in sets}
    for (a, b), text in page.cells.items():
        assert int(text.replace(",", "")) == len(sets[a] & sets[b]), (a, b)
    for name, s in sets.items():
        others = set().union(*(v for n, v in sets.items() if n != name))
        assert int(page.only[name].replace(",", "")) == len(s - others)


def test_search_filters_the_sampled_rows(built):
    """report.html#q=WORD fills the search box; only rows holding WORD stay visible."""
    tmp, report, _ = built
    page = _parse(_open(report.as_uri(), tmp / "profile")[0])
    assert len(page.rows) == 60 and page.shown.strip() == "60 of 60 rows shown"
    word = "recipe"
    holding = [r for r in page.rows if word in r["text"].lower()]
    assert 0 < len(holding) < 60
    filtered = _parse(_open(report.as_uri() + f"#q={word}", tmp / "profile")[0])
    visible = [r for r in filtered.rows if "display: none" not in r["style"]]
    assert len(visible) == len(holding)
    assert all(word in r["text"].lower() for r in visible)
    assert filtered.shown.strip() == f"{len(holding)} of 60 rows shown"


def test_screenshot(built):
    """A full-page screenshot: a PNG of the window's size that is not blank."""
    tmp, report, _ = built
    shot = tmp / "report.png"
    _browser(["--window-size=1400,5000", f"--screenshot={shot}", report.as_uri()], tmp / "profile")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 5000)
    pil = pytest.importorskip("PIL.Image")
    with pil.open(shot) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 200  # text, charts and swatches, not a blank page


def test_the_checks_catch_a_broken_page(built):
    """The same checks fail a page with a script error and a chart that drew nothing."""
    tmp, report, _ = built
    broken = tmp / "broken.html"
    html = report.read_text(encoding="utf-8")
    html = html.replace(
        "</main>",
        '<svg class="chart" width="0" height="0"></svg><script>notDefined();</script></main>',
    )
    broken.write_text(html, encoding="utf-8")
    dom, console = _open(broken.as_uri(), tmp / "profile")
    page = _parse(dom)
    assert page.body.get("data-script-errors") == "1"
    assert any("notDefined is not defined" in line for line in console)
    assert page.charts[-1] == "no" and page.body["data-charts-drawn"] != page.body["data-charts"]
