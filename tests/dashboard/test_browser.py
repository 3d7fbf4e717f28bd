"""The dashboard's pages in a real browser: Debian's Chromium driven by Playwright, against the
real `branchwork dashboard` server reading a store that real pipeline runs wrote.

A person clicks through: the runs list, the failed run, its failed items, a traceback, the
step's logs; fixes what made the step fail; presses Resume; and sees the run complete on the
same page, without reloading it. Screenshots of every page land in test-artifacts/screenshots/
for a person to look at (CI keeps the folder; the README shows the run page)."""

from __future__ import annotations

import contextlib
import re
import select
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processes import Spawned, python_env, wait_until

CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep Chromium off the network (see shared/notes/real-servers.md). Playwright gives
# every launch a fresh, empty profile directory of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BRANCHWORK = str(Path(sys.executable).parent / "branchwork")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
HOSTILE_LABEL = '<img src=x onerror="window.pwned=2">'
HOSTILE_PRINT = "<script>window.pwned=1</script>"
HOSTILE_ID = "<img src=x onerror=window.pwned=3>"
HOSTILE_KEY = "<img src=x onerror=window.pwned=4>"

PIPELINES = f"""
import time
from pathlib import Path

from branchwork import log_metadata, pipeline, step


@step
def count(n: int) -> int:
    return n


@step
def work(folder: str, i: int) -> int:
    print("{HOSTILE_PRINT} working on item", i)
    if i == 2 and not Path(folder, "marker").exists():
        raise FileNotFoundError(f"marker file missing in {{folder}}")
    return i * i


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def fanout(folder: str, n: int, label: str):
    return total([work(folder, i) for i in range(count(n))])


@step
def shout(label: str) -> str:
    print("{HOSTILE_PRINT}", label)
    log_metadata({{"{HOSTILE_KEY}": "{HOSTILE_PRINT}"}})
    return "{HOSTILE_PRINT}"


@pipeline
def hostile(label: str):
    return shout(label, id="{HOSTILE_ID}")


@step
def draw(width: int):
    from PIL import Image

    return Image.new("RGB", (width, width // 2), (200, 30, 60))


@pipeline
def picture(width: int):
    return draw(width)


@pipeline
def album(width: int):
    return picture.submit(width, id="cover")


@step(enable_cache=False)
def gated(folder: str, i: int) -> int:
    deadline = time.monotonic() + 60
    while not Path(folder, f"release-{{i}}").exists():
        assert time.monotonic() < deadline, f"release-{{i}} never came"
        time.sleep(0.05)
    return i


@pipeline(enable_cache=False)
def growing(folder: str, n: int):
    for i in range(n):
        int(gated(folder, i))  # waits: each step is discovered once the last one is done
"""


def answers(url: str, headers: dict[str, str]) -> bool:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=2
        ) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipelines.py").write_text(PIPELINES)
    return folder


def branchwork(home: Path, *args: str, expect: int = 0) -> str:
    """Run the real CLI in its own process against the store at `home`; its stdout."""
    with Spawned([BRANCHWORK, *args], env=python_env(home)) as command:
        code, out, err = command.wait(120)
    assert code == expect, f"branchwork {' '.join(args)} exited {code}:\n{err}"
    return out


def run_fanout(
    home: Path, project: Path, folder: Path, n: int, *options: str, expect: int = 0
) -> None:
    target = f"{project / 'pipelines.py'}:fanout"
    params = ["-p", f"folder={folder}", "-p", f"n={n}", "-p", f"label={HOSTILE_LABEL}"]
    branchwork(home, "run", target, *params, *options, expect=expect)


def first_line(server: Spawned, timeout: float) -> str:
    """The first line the server prints (its URL), waiting at most `timeout` seconds."""
    stdout = server.process.stdout
    assert stdout is not None
    readable, _, _ = select.select([stdout], [], [], timeout)
    assert readable, f"the dashboard printed nothing in {timeout}s"
    return stdout.readline().strip()


@contextlib.contextmanager
def serving(home: Path, **env: str) -> Iterator[str]:
    """The real `branchwork dashboard` on a port it picks; the URL it printed. Killed at the
    end, with whatever it started (a resume runs in a process of its own)."""
    command = [BRANCHWORK, "dashboard", "--port", "0", "--no-open"]
    with Spawned(command, env=python_env(home, **env)) as server:
        line = first_line(server, 60)
        found = re.fullmatch(r"Dashboard: (http://127\.0\.0\.1:\d+/(\?token=\S+)?)", line)
        if not found:
            server.kill()
            raise AssertionError(f"first line {line!r}:\n{server.process.stderr.read()}")
        url = found.group(1)
        headers = {"Authorization": f"Bearer {env['BRANCHWORK_DASHBOARD_TOKEN']}"} if env else {}
        wait_until(lambda: answers(url.split("?")[0] + "api/info", headers), 30, "the dashboard")
        yield url


@pytest.fixture
def dashboard(branchwork_home: Path) -> Iterator[str]:
    with serving(branchwork_home) as url:
        yield url


@pytest.fixture
def page() -> Iterator[Any]:
    """A Chromium page; fails the test on any script error the page raised, and on any
    request that left this machine (every asset ships in the package)."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.set_default_timeout(20_000)
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.on("request", lambda request: requested.append(request.url))
            yield tab
        finally:
            browser.close()
    assert not errors, f"the page raised: {errors}"
    elsewhere = [url for url in requested if not url.startswith(("http://127.0.0.1:", "data:"))]
    assert not elsewhere, f"the pages fetched from elsewhere: {elsewhere}"
    assert any("/static/app.js" in url for url in requested), requested


def screenshot(tab: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_nothing_ran(tab: Any) -> None:
    """No script from the store ran, and no element came from its markup."""
    assert tab.evaluate("window.pwned") is None
    assert tab.locator("main img[src='x'], main script").count() == 0


def test_failed_run_to_traceback_to_logs_then_resume_completes_live(
    branchwork_home, project, dashboard, page, tmp_path
):
    from playwright.sync_api import expect

    ok, broken = tmp_path / "ok", tmp_path / "broken"
    ok.mkdir()
    broken.mkdir()
    (ok / "marker").touch()
    run_fanout(branchwork_home, project, ok, 5)
    branchwork(branchwork_home, "orchestrator", "register", "team-local", "--flavor", "local")
    branchwork(branchwork_home, "stack", "register", "team", "--orchestrator", "team-local")
    run_fanout(branchwork_home, project, broken, 4, "--stack", "team", expect=1)

    # The runs list: both runs, newest (the failed one) first, with their counts by state.
    page.goto(dashboard)
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".badge")).to_have_text("failed")
    expect(rows.nth(0)).to_contain_text("4 completed")
    expect(rows.nth(0)).to_contain_text("1 failed")
    expect(rows.nth(0)).to_contain_text("dynamic")
    expect(rows.nth(1).locator(".badge")).to_have_text("completed")
    expect(rows.nth(1)).to_contain_text("7 completed")
    # Where each ran: the stack that started it, its orchestrator's flavor in small print.
    expect(rows.nth(0).locator("td.ran-on .stack-name")).to_have_text("team")
    expect(rows.nth(1).locator("td.ran-on .stack-name")).to_have_text("default")
    expect(rows.nth(0).locator("td.ran-on small")).to_have_text("local")
    screenshot(page, "runs-list")

    # Filters live in the address; a search that matches nothing says so.
    page.locator("select[name='status']").select_option("completed")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).locator(".badge")).to_have_text("completed")
    assert "status=completed" in page.url
    page.locator("select[name='time']").select_option("1h")
    expect(rows).to_have_count(1)
    page.locator("input[name='q']").fill("no-such-run")
    page.locator("input[name='q']").press("Enter")
    expect(page.locator("p.empty")).to_have_text("No runs match these filters.")
    page.goto(dashboard + "#/runs?time=1h")
    expect(rows).to_have_count(2)

    # The failed run: its failed items come first, with the error line; parameters are text.
    rows.nth(0).locator("a.run-link").click()
    failed = page.locator("section#failed")
    expect(failed.locator("tbody tr")).to_have_count(1)
    expect(failed.locator("tbody tr")).to_contain_text("work_3")
    expect(failed.locator("tbody tr")).to_contain_text("FileNotFoundError: marker file missing")
    assert page.locator("main section").first.get_attribute("id") == "failed"
    expect(page.locator(".params")).to_contain_text(HOSTILE_LABEL)
    expect(page.locator("g.node[data-step='work']")).to_contain_text("3 completed")
    expect(page.locator("g.node[data-step='work']")).to_contain_text("1 failed")
    assert_nothing_ran(page)
    screenshot(page, "run-failed")

    # Its traceback, then its logs: what the step printed, shown as text.
    failed.locator("a.traceback-link").click()
    traceback = page.locator("details.traceback[open] pre")
    expect(traceback).to_contain_text("FileNotFoundError: marker file missing")
    expect(traceback).to_contain_text('raise FileNotFoundError(f"marker file missing')
    expect(page.locator("pre.logs")).to_contain_text(f"{HOSTILE_PRINT} working on item 2")
    assert_nothing_ran(page)
    screenshot(page, "step-failed")

    # Fix the cause, resume from the run page, and watch it complete on the same page.
    (broken / "marker").touch()
    page.locator("nav.crumbs a").nth(1).click()
    expect(page.locator(".run-header .badge")).to_have_text("failed")
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".run-header .badge")).to_have_text("completed", timeout=60_000)
    expect(page.locator(".run-header")).to_contain_text("6 completed")
    expect(page.locator("section#failed")).to_be_hidden()
    expect(page.locator("g.node[data-step='total']")).to_contain_text("1 completed")
    assert page.evaluate("window.notReloaded") is True
    assert_nothing_ran(page)
    screenshot(page, "run-page")
    listed = branchwork(branchwork_home, "runs", "list")
    assert re.search(r"fanout\s+completed\s+dynamic", listed.splitlines()[1]), listed


def test_live_counts_grow_as_a_dynamic_run_discovers_steps(
    branchwork_home, project, dashboard, page, tmp_path
):
    from playwright.sync_api import expect

    gates = tmp_path / "gates"
    gates.mkdir()
    target = f"{project / 'pipelines.py'}:growing"
    args = [BRANCHWORK, "run", target, "-p", f"folder={gates}", "-p", "n=3"]
    with Spawned(args, env=python_env(branchwork_home)) as run:
        page.goto(dashboard)
        link = page.locator("table.runs a.run-link")
        expect(link).to_have_count(1, timeout=60_000)  # the list shows new runs by itself
        link.click()
        header = page.locator(".run-header")
        node = page.locator("g.node[data-step='gated']")
        expect(header.locator(".badge")).to_have_text("running")
        expect(node).to_contain_text("1 run ")
        expect(node).to_contain_text("1 running")
        page.evaluate("window.notReloaded = true")
        for released in range(3):
            (gates / f"release-{released}").touch()
            if released < 2:
                expect(node).to_contain_text(f"{released + 2} runs")
                expect(node).to_contain_text(f"{released + 1} completed")
            if released == 0:
                screenshot(page, "run-live")
        expect(header.locator(".badge")).to_have_text("completed", timeout=60_000)
        expect(node).to_contain_text("3 completed")
        assert page.evaluate("window.notReloaded") is True
        code, _, err = run.wait(60)
        assert code == 0, err


def test_a_large_group_opens_one_page_of_items_and_the_timeline_scrolls_through_all(
    branchwork_home, project, dashboard, page, tmp_path
):
    from playwright.sync_api import expect

    (tmp_path / "marker").touch()
    run_fanout(branchwork_home, project, tmp_path, 450)
    page.goto(dashboard)
    page.locator("table.runs a.run-link").click()
    node = page.locator("g.node[data-step='work']")
    expect(node).to_contain_text("450 runs")
    node.locator(".node-head").click()
    chips = node.locator("a.chip")
    expect(chips).to_have_count(40)
    expect(node).to_contain_text("1–40 of 450")
    node.locator(".chip-pager").last.click()
    expect(node).to_contain_text("41–80 of 450")
    expect(chips.first).to_contain_text("work_41")

    page.locator(".tl-group[data-step='work'] button").click()
    viewport = page.locator(".tl-viewport")
    expect(page.locator(".tl-item").first).to_contain_text("work")
    assert page.locator(".tl-row").count() < 60  # virtualized: only the rows in view exist
    viewport.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(page.locator(".tl-item[data-invocation='work_450']")).to_have_count(1)
    assert page.locator(".tl-row").count() < 60
    screenshot(page, "run-large")
    # A step run: its arguments, its output's stored preview, and who consumed it.
    chips.first.click()
    expect(page.locator(".step-header h1")).to_contain_text("work_41")
    expect(page.locator("section", has_text="Arguments")).to_contain_text("40")
    output = page.locator("table.artifacts tr[data-name='output']")
    expect(output.locator(".preview-text")).to_have_text("1600")  # 40 * 40
    expect(page.locator("pre.logs")).to_contain_text("working on item 40")
    screenshot(page, "step-completed")
    output.locator("a.lineage").click()

    # The consumer: 450 inputs, a page of 50 at a time, each with the step run that made it.
    expect(page.locator(".step-header h1")).to_contain_text("total")
    inputs = page.locator("section", has_text="Inputs")
    expect(inputs.locator("tbody tr")).to_have_count(50)
    expect(inputs.locator(".page-info")).to_have_text("1–50 of 450")
    expect(inputs.locator("tbody tr").first.locator("a.lineage")).to_contain_text("/ work")
    inputs.get_by_role("button", name="Next ›").click()
    expect(inputs.locator(".page-info")).to_have_text("51–100 of 450")
    expect(inputs.locator("tbody tr")).to_have_count(50)


def test_the_printed_url_with_its_token_opens_the_pages_and_resume_works(
    branchwork_home, project, page, tmp_path
):
    from playwright.sync_api import expect

    token = "team-token-0123456789abcdef"
    run_fanout(branchwork_home, project, tmp_path, 3, expect=1)
    with serving(branchwork_home, BRANCHWORK_DASHBOARD_TOKEN=token) as url:
        assert url.endswith(f"?token={token}")
        refused = page.goto(url.split("?")[0])
        assert refused is not None and refused.status == 401
        expect(page.locator("body")).to_contain_text("This dashboard needs its token")

        page.goto(url)  # sets the cookie; the pages then need nothing more
        expect(page.locator("table.runs tbody tr .badge")).to_have_text("failed")
        assert "token" not in page.url
        page.locator("table.runs a.run-link").click()
        (tmp_path / "marker").touch()
        page.get_by_role("button", name="Resume").click()  # a POST, the event stream: cookie
        expect(page.locator(".run-header .badge")).to_have_text("completed", timeout=60_000)


def test_stop_a_running_run_then_resume_it_from_the_page(
    branchwork_home, project, dashboard, page, tmp_path
):
    from playwright.sync_api import expect

    gates = tmp_path / "gates"
    gates.mkdir()
    target = f"{project / 'pipelines.py'}:growing"
    args = [BRANCHWORK, "run", target, "-p", f"folder={gates}", "-p", "n=3"]
    with Spawned(args, env=python_env(branchwork_home)) as run:
        page.goto(dashboard)
        expect(page.locator("table.runs a.run-link")).to_have_count(1, timeout=60_000)
        page.locator("table.runs a.run-link").click()
        badge = page.locator(".run-header .badge")
        node = page.locator("g.node[data-step='gated']")
        expect(node).to_contain_text("1 running")
        expect(page.get_by_role("button", name="Resume")).to_be_disabled()
        page.get_by_role("button", name="Stop").click()
        expect(page.locator(".action-message")).to_have_text("Stop requested.")
        # The run's loop reads stop requests from the store every 0.2 s, and a graceful stop
        # changes nothing there until then: give it that time before the step can finish.
        time.sleep(1)
        (gates / "release-0").touch()  # the running step finishes; nothing new starts
        expect(badge).to_have_text("stopped", timeout=60_000)
        expect(node).to_contain_text("1 completed")
        expect(page.get_by_role("button", name="Stop")).to_be_disabled()
        run.wait(60)

    (gates / "release-1").touch()
    (gates / "release-2").touch()
    page.get_by_role("button", name="Resume").click()
    expect(badge).to_have_text("completed", timeout=60_000)
    expect(node).to_contain_text("3 completed")


def test_an_image_output_shows_its_stored_thumbnail(
    branchwork_home, project, dashboard, page, tmp_path
):
    from playwright.sync_api import expect

    pytest.importorskip("PIL", reason="the image materializer needs Pillow")
    branchwork(branchwork_home, "run", f"{project / 'pipelines.py'}:picture", "-p", "width=64")
    page.goto(dashboard)
    page.locator("table.runs a.run-link").click()
    node = page.locator("g.node[data-step='draw']")
    node.locator(".node-head").click()
    node.locator("a.chip").click()
    output = page.locator("table.artifacts tr[data-name='output']")
    expect(output.locator(".preview-text")).to_have_text("RGB image, 64x32")
    expect(output.locator(".preview-cell")).to_contain_text("width")
    thumbnail = output.locator("img.thumb")
    expect(thumbnail).to_be_visible()
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") == 64
    screenshot(page, "step-image")


def test_a_child_run_links_to_its_parent_run(branchwork_home, project, dashboard, page):
    from playwright.sync_api import expect

    pytest.importorskip("PIL", reason="the image materializer needs Pillow")
    branchwork(branchwork_home, "run", f"{project / 'pipelines.py'}:album", "-p", "width=8")
    page.goto(dashboard)
    runs = page.locator("table.runs tbody tr")
    expect(runs).to_have_count(2)
    runs.filter(has_text="picture").locator("a.run-link").click()
    parent = page.locator("a.parent-link")
    expect(parent.locator("xpath=..")).to_contain_text("(cover)")
    parent.click()
    expect(page.locator("h1")).to_contain_text("album-")


def test_markup_from_the_store_is_shown_as_text_everywhere(
    branchwork_home, project, dashboard, page
):
    """A step whose invocation id, parameter, printed text, metadata key and return value are
    all markup: every page shows them as text, and nothing they contain runs."""
    from playwright.sync_api import expect

    target = f"{project / 'pipelines.py'}:hostile"
    branchwork(branchwork_home, "run", target, "-p", f"label={HOSTILE_LABEL}")
    page.goto(dashboard)
    page.locator("table.runs a.run-link").click()
    expect(page.locator(".params")).to_contain_text(HOSTILE_LABEL)
    node = page.locator("g.node[data-step='shout']")
    node.locator(".node-head").click()
    expect(node.locator("a.chip title")).to_have_text(re.compile(re.escape(HOSTILE_ID)))
    page.locator(".tl-group[data-step='shout'] button").click()
    expect(page.locator(".tl-item a")).to_have_text(HOSTILE_ID)
    assert_nothing_ran(page)

    node.locator("a.chip").click()  # its address carries the id, encoded
    expect(page.locator(".step-header h1")).to_contain_text(HOSTILE_ID)
    expect(page.locator("section", has_text="Arguments")).to_contain_text(HOSTILE_LABEL)
    expect(page.locator("section", has_text="Metadata")).to_contain_text(HOSTILE_KEY)
    expect(page.locator(".preview-text")).to_have_text(f"'{HOSTILE_PRINT}'")
    expect(page.locator("pre.logs")).to_contain_text(f"{HOSTILE_PRINT} {HOSTILE_LABEL}")
    assert_nothing_ran(page)
    screenshot(page, "step-markup")


def test_a_background_request_to_a_stopped_server_is_said_above_the_page(
    branchwork_home, project, page, tmp_path
):
    """The server stops while a run page is open: scrolling the timeline asks for a page of
    step runs, which fails; the page says so in one line instead of failing silently."""
    from playwright.sync_api import expect

    (tmp_path / "marker").touch()
    run_fanout(branchwork_home, project, tmp_path, 450)  # more than a page (200) of items
    with serving(branchwork_home) as url:
        page.goto(url)
        page.locator("table.runs a.run-link").click()
        page.locator(".tl-group[data-step='work'] button").click()
        expect(page.locator(".tl-item").first).to_contain_text("work")
    problem = page.locator("#problem")
    expect(problem).to_be_hidden()
    page.locator(".tl-viewport").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("A request to the server failed")
