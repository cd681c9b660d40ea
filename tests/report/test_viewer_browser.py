"""viewer.html in a real headless Chromium: it loads offline from a run folder, its counts match
the run, a filter click and a search change what is shown, hostile text stays text.

The run folder is made by the real stages: synthesize against the stub server, filter (default
rules), report. Skips, saying why, where no Chromium is installed (``.ci/run`` installs Debian's
``chromium``). A screenshot is saved under the test's tmp folder (its path is printed) and to
``/tmp/viewer_screenshot.png``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from mind_nemo.report.render import ReportConfig, write_report
from mind_nemo.report.sample import SampledContext, SampledConversation
from mind_nemo.report.viewer import PAGE_SIZE, write_viewer
from tests.filter.helpers import context_row, conversation_row, filter_run, make_run
from tests.helpers import read_rows, run_stage, write_corpus
from tests.report.browser import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it)",
)
READY = "document.body && document.body.dataset.ready === '1'"
SHOWN = "Number(document.getElementById('shown').textContent)"
TOTAL = "Number(document.getElementById('total').textContent)"
PAGE = "document.getElementById('page').textContent"
SECTIONS = "document.querySelectorAll('#list section').length"
CARDS = "document.querySelectorAll('#list .conv').length"
SCREENSHOT = Path("/tmp/viewer_screenshot.png")


@pytest.fixture(scope="module")
def stub_run(stub_server, tmp_path_factory) -> Path:
    """synthesize (7 styles, stub server) -> filter -> report, as a user runs them."""
    root = tmp_path_factory.mktemp("viewer")
    stub = stub_server("--latency", "0,0.002")
    corpus = write_corpus(root / "corpus.jsonl", 4)
    run_stage(
        "synthesize", *stub.overrides(), "corpus=files", f"corpus.path={corpus}",
        "corpus.id_field=id", f"output_dir={root / 'synth'}", "+style=all", "progress=false",
        timeout=300,
    )  # fmt: skip
    # The stub writes clean two-speaker dialogues; asking debates for 99 turns gives the
    # viewer some rejected rows to filter on.
    run_stage("filter", f"run_dir={root / 'synth'}", f"output_dir={root / 'filtered'}",
              "filter.structure.min_turns_by_style.debate=99", "progress=false",
              timeout=300)  # fmt: skip
    run_stage("report", str(root / "filtered"), timeout=300)
    return root / "filtered"


@pytest.fixture(scope="module")
def stub_server(request):  # module scope: one stub for the module's run folder
    from mind_nemo.servers.stub import StubProcess

    started: list[StubProcess] = []

    def start(*args: str) -> StubProcess:
        started.append(StubProcess(*args))
        return started[-1]

    yield start
    for stub in started:
        stub.stop()


async def click(browser: Browser, selector: str) -> None:
    await browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


async def search(browser: Browser, text: str) -> None:
    """Type into the search box (it waits 120 ms for typing to stop before it filters)."""
    await browser.evaluate(
        f"(() => {{ const s = document.getElementById('search'); s.value = {json.dumps(text)};"
        "s.dispatchEvent(new Event('input')); })()"
    )
    await asyncio.sleep(0.5)


def read_rows_of(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("shard-*.jsonl")) for row in read_rows(path)]


def counted(run: Path) -> tuple[int, int]:
    """(conversations, rejected) as the filter's files hold them."""
    manifest = json.loads((run / "manifest.json").read_text())
    return manifest["conversations"]["input"], manifest["conversations"]["rejected"]


def test_viewer_counts_filters_search_and_screenshot(stub_run, tmp_path):
    page = stub_run / "viewer.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # nothing fetched from anywhere
    total, rejected = counted(stub_run)
    assert total >= 28 and rejected == total // 7  # the debates

    rows = [r for part in ("conversations", "rejects") for r in read_rows_of(stub_run / part)]
    needle = re.search(r"check ([0-9a-f]{8})", rows[0]["text"]).group(1).upper()  # any case
    expected_hits = sum(needle.lower() in r["text"].lower() for r in rows)
    assert 0 < expected_hits < total

    async def drive() -> dict:
        async with Browser(CHROMIUM, tmp_path / "profile") as browser:
            await browser.open(page.as_uri(), READY)
            seen = {
                "total": await browser.evaluate(TOTAL),
                "shown": await browser.evaluate(SHOWN),
                "cards": await browser.evaluate(CARDS),
                "turns": await browser.evaluate("document.querySelectorAll('#list .turn').length"),
                "speakers": await browser.evaluate(
                    "new Set([...document.querySelectorAll('#list .turn b')]"
                    ".map(b => b.textContent)).size"
                ),
                "colours": await browser.evaluate(
                    "new Set([...document.querySelectorAll('#list .turn')]"
                    ".map(t => getComputedStyle(t).backgroundColor)).size"
                ),
            }
            await click(browser, 'button[data-verdict="rejected"]')
            seen["rejected_shown"] = await browser.evaluate(SHOWN)
            seen["rejected_badges"] = await browser.evaluate(
                "[...document.querySelectorAll('#list .conv')]"
                ".every(c => c.dataset.verdict === 'rejected')"
            )
            await click(browser, 'button[data-verdict="*"]')
            await click(browser, 'button[data-style="debate"]')
            seen["debate_shown"] = await browser.evaluate(SHOWN)
            await click(browser, 'button[data-style="*"]')
            await search(browser, needle)
            seen["search_shown"] = await browser.evaluate(SHOWN)
            await search(browser, "")
            seen["shot"] = await browser.screenshot(tmp_path / "viewer.png")
            return seen

    seen = asyncio.run(drive())
    assert seen["total"] == seen["shown"] == total
    assert 0 < seen["cards"] <= total  # one page of contexts in the DOM
    assert seen["turns"] > seen["cards"] and seen["speakers"] == 2 and seen["colours"] == 2
    assert seen["rejected_shown"] == rejected and seen["rejected_badges"]
    assert seen["debate_shown"] == total // 7
    assert seen["search_shown"] == expected_hits
    shot: Path = seen["shot"]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    SCREENSHOT.write_bytes(shot.read_bytes())
    print(f"viewer screenshot: {shot} (copy: {SCREENSHOT})")


HOSTILE = (
    "Alice: look </script><script>document.title='pwned'</script> and <img src=x "
    "onerror=\"document.title='pwned'\"> here, with $x < 2$ & more words.\n\n"
    "Bob: that is only text, says Bob, with 2 and words enough to pass.\n\n"
    "Alice: right, </SCRIPT> again <!-- and a comment --> and \u2028 a line separator.\n\n"
    "Bob: agreed, nothing here is markup, it is all just what the model wrote."
)


def test_hostile_text_is_shown_as_text(tmp_path):
    rows = [conversation_row(0, 0, "debate", text=HOSTILE)]
    run = make_run(tmp_path / "run", [rows], [[context_row(0, 0)]], styles=["debate"])
    filter_run(run, tmp_path / "out", "filter=paper", "tokenizer=embedded")
    write_report(ReportConfig(run_dir=str(tmp_path / "out")))
    page = (tmp_path / "out" / "viewer.html").read_text()
    assert page.count("</script>") == 2  # the data block's and the page script's own

    async def drive() -> dict:
        async with Browser(CHROMIUM, tmp_path / "profile") as browser:
            await browser.open((tmp_path / "out" / "viewer.html").as_uri(), READY)
            return {
                "title": await browser.evaluate("document.title"),
                "images": await browser.evaluate("document.images.length"),
                "text": await browser.evaluate("document.getElementById('list').innerText"),
                "shown": await browser.evaluate(SHOWN),
            }

    seen = asyncio.run(drive())
    assert seen["title"] == "mind_nemo data viewer" and seen["images"] == 0
    assert seen["shown"] == 1
    assert "</script><script>document.title='pwned'</script>" in seen["text"]
    assert "<img src=x" in seen["text"]


def test_ten_thousand_conversations_page_and_filter(tmp_path):
    """10,500 conversations: one page of contexts in the DOM; paging and a filter click work.
    Timings are printed, not asserted (speed goals live in bench/)."""
    styles = ["debate", "interview", "layman_knowall", "problem_solving", "teacher_student",
              "two_professors", "two_students"]  # fmt: skip
    sample = [
        SampledContext(
            (f"doc-{i:05d}", 0),
            f"Context {i}: let $x = {i}$, so $2x = {2 * i}$.",
            [
                SampledConversation(
                    s, f"Ana: what is 2x for x = {i}?\n\nBen: it is {2 * i}.\n\nAna: thanks.",
                    "rejected" if (i + j) % 5 == 0 else "kept",
                    "too_short" if (i + j) % 5 == 0 else None, 40 + j,
                )
                for j, s in enumerate(styles)
            ],
        )
        for i in range(1500)
    ]  # fmt: skip
    page = write_viewer(tmp_path / "viewer.html", "synthetic", sample, "every context")
    started = time.monotonic()

    async def drive() -> dict:
        async with Browser(CHROMIUM, tmp_path / "profile") as browser:
            await browser.open(page.as_uri(), READY)
            seen = {"load_s": time.monotonic() - started, "shown": await browser.evaluate(SHOWN)}
            seen["sections"] = await browser.evaluate(SECTIONS)
            seen["page"] = await browser.evaluate(PAGE)
            await browser.evaluate("document.getElementById('next').click()")
            seen["next_page"] = await browser.evaluate(PAGE)
            seen["first_on_page_2"] = await browser.evaluate(
                "document.querySelector('#list section .raw h3').textContent"
            )
            clicked = time.monotonic()
            await click(browser, 'button[data-verdict="rejected"]')
            seen["rejected"] = await browser.evaluate(SHOWN)
            seen["click_s"] = time.monotonic() - clicked
            return seen

    seen = asyncio.run(drive())
    assert seen["shown"] == 10_500 and seen["sections"] == PAGE_SIZE
    assert seen["page"] == f"1 / {1500 // PAGE_SIZE}" and seen["next_page"].startswith("2 / ")
    assert seen["first_on_page_2"] == f"doc-{PAGE_SIZE:05d} #0"
    assert seen["rejected"] == sum(c.verdict == "rejected" for s in sample for c in s.conversations)
    print(
        f"10,500 conversations: page ready {seen['load_s']:.2f}s after launch (browser start "
        f"included), verdict filter {seen['click_s'] * 1000:.0f} ms"
    )
