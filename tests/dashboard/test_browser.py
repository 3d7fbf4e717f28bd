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

from branchwork import log_metadata, pipeline, step, wait


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
    print("released", i)
    return i


@pipeline(enable_cache=False)
def growing(folder: str, n: int):
    for i in range(n):
        int(gated(folder, i))  # waits: each step is discovered once the last one is done


@step
def ship(target: str) -> str:
    return f"shipped to {{target}}"


@pipeline
def approval():
    return ship("production" if wait("Ship it to production?", bool) else "nowhere")


def named_step(i):
    def passing(i: int) -> int:
        return i

    passing.__name__ = passing.__qualname__ = f"s{{i:03d}}"
    return step(passing)


NAMED_STEPS = [named_step(i) for i in range(301)]


@pipeline
def wide():  # 301 step names: one more than the graph draws
    for i, named in enumerate(NAMED_STEPS):
        named(i)
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
    """A Chromium page; fails the test on any script error a page of its browser raised, and
    on any request that left this machine (every asset ships in the package). More tabs of
    the same browser: `page.context.new_page()`, watched alike."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(20_000)
            context.on("page", lambda tab: tab.on("pageerror", lambda e: errors.append(str(e))))
            context.on("request", lambda request: requested.append(request.url))
            yield context.new_page()
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
        page.get_by_role("button", name="Resume").click()  # a POST, then the polls: cookie
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


def start_growing(home: Path, project: Path, gates: Path, n: int) -> Spawned:
    """`growing` in a process of its own: its gated steps wait (60 s at most) for the file
    gates/release-i."""
    target = f"{project / 'pipelines.py'}:growing"
    args = [BRANCHWORK, "run", target, "-p", f"folder={gates}", "-p", f"n={n}"]
    return Spawned(args, env=python_env(home))


def set_visibility(tab: Any, state: str) -> None:
    """What the browser does when the tab is put in the background ("hidden") or shown
    again ("visible"); headless, every tab is visible."""
    tab.evaluate(
        """state => {
            const set = (name, value) =>
                Object.defineProperty(document, name, { value, configurable: true });
            set("visibilityState", state);
            set("hidden", state === "hidden");
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


def count_polls_from_now(tab: Any) -> float:
    """The tab's clock now, for `polls_since`; the tab's list of the requests it made is
    emptied, so that it has room for those to come."""
    return float(tab.evaluate("performance.clearResourceTimings(), performance.now()"))


def polls_since(tab: Any, moment: float) -> int:
    """How many times the tab asked whether its run changed since `moment`."""
    return int(
        tab.evaluate(
            """moment => performance.getEntriesByType("resource")
                .filter((entry) => entry.name.includes("/changes?") && entry.startTime > moment)
                .length""",
            moment,
        )
    )


def test_tabs_following_a_running_run_leave_every_page_usable_and_pause_while_hidden(
    branchwork_home, project, dashboard, page, tmp_path
):
    """Eight tabs on a running run's page: a ninth on the runs list still loads at once (each
    held a connection open, and a browser opens six per host: the seventh hung). A hidden
    tab asks nothing, and catches up when shown again."""
    from playwright.sync_api import expect

    gates = tmp_path / "gates"
    gates.mkdir()
    with start_growing(branchwork_home, project, gates, 2) as run:
        page.goto(dashboard)
        link = page.locator("table.runs a.run-link")
        expect(link).to_have_count(1, timeout=60_000)
        run_page = dashboard + str(link.get_attribute("href"))
        tabs = [page, *(page.context.new_page() for _ in range(7))]
        for tab in tabs:
            tab.goto(run_page)
            expect(tab.locator(".run-header .badge")).to_have_text("running")
        runs_list = page.context.new_page()
        runs_list.goto(dashboard + "#/runs")
        expect(runs_list.locator("table.runs tbody tr")).to_have_count(1, timeout=5_000)

        hidden = tabs[-1]
        set_visibility(hidden, "hidden")
        hidden_at = count_polls_from_now(hidden)
        (gates / "release-0").touch()
        for tab in tabs[:-1]:
            expect(tab.locator("g.node[data-step='gated']")).to_contain_text("1 completed")
        hidden.wait_for_timeout(2_000)  # two polls' time
        assert polls_since(hidden, hidden_at) == 0
        expect(hidden.locator("g.node[data-step='gated']")).not_to_contain_text("completed")
        set_visibility(hidden, "visible")
        expect(hidden.locator("g.node[data-step='gated']")).to_contain_text("1 completed")

        (gates / "release-1").touch()
        for tab in tabs:
            expect(tab.locator(".run-header .badge")).to_have_text("completed", timeout=60_000)
        code, _, err = run.wait(60)
        assert code == 0, err


def test_a_step_page_follows_its_running_step_until_the_run_ends(
    branchwork_home, project, dashboard, page, tmp_path
):
    """It was a snapshot: a running step read running until the page was reloaded."""
    from playwright.sync_api import expect

    gates = tmp_path / "gates"
    gates.mkdir()
    with start_growing(branchwork_home, project, gates, 1) as run:
        page.goto(dashboard)
        expect(page.locator("table.runs a.run-link")).to_have_count(1, timeout=60_000)
        page.locator("table.runs a.run-link").click()
        node = page.locator("g.node[data-step='gated']")
        node.locator(".node-head").click()
        node.locator("a.chip").click()
        header = page.locator(".step-header")
        expect(header.locator("h1 .badge")).to_have_text("running")
        ended = header.locator("dt:text-is('Ended') + dd")
        expect(ended).to_have_text("-")
        took = header.locator("dt:text-is('Duration') + dd")
        running_for = took.text_content()
        expect(page.locator(".log-status")).to_have_text(
            "No logs yet: they are stored when the attempt ends."
        )
        page.evaluate("window.notReloaded = true")

        (gates / "release-0").touch()
        expect(header.locator("h1 .badge")).to_have_text("completed", timeout=60_000)
        expect(ended).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
        expect(took).not_to_have_text(str(running_for))
        expect(page.locator("pre.logs")).to_contain_text("released 0")
        assert page.evaluate("window.notReloaded") is True
        code, _, err = run.wait(60)
        assert code == 0, err

    # The run has ended: the page stops asking (once it has seen that).
    page.wait_for_timeout(1_500)  # a poll's time, to see the end
    ended_at = count_polls_from_now(page)
    page.wait_for_timeout(2_000)  # two polls' time
    assert polls_since(page, ended_at) == 0


def test_a_paused_run_shows_its_question_and_resumes_once_answered(
    branchwork_home, project, dashboard, page
):
    """The page showed neither the question nor how to answer it, and offered Resume, which
    a paused run refuses until its question has an answer."""
    from playwright.sync_api import expect

    branchwork(branchwork_home, "run", f"{project / 'pipelines.py'}:approval")  # pauses
    page.goto(dashboard)
    link = page.locator("table.runs a.run-link")
    name = str(link.text_content())
    link.click()
    waiting = page.locator(".run-header .waiting")
    expect(waiting.locator("h2")).to_have_text("Waiting for an answer")
    expect(waiting.locator(".question")).to_have_text("Ship it to production?")
    expect(waiting).to_contain_text('{"type":"boolean"}')
    expect(waiting).to_contain_text("none: it waits until answered")
    expect(waiting.locator(".answer-command")).to_have_text(
        f"branchwork runs answer {name} --value VALUE"
    )
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_disabled()
    expect(page.locator(".action-reason")).to_have_text(
        "Resume is off until the question below is answered."
    )
    question = page.locator(".questions tr[data-wait='wait']")
    expect(question).to_contain_text("Ship it to production?")
    expect(question).to_contain_text("waiting for an answer")
    screenshot(page, "run-paused")
    page.evaluate("window.notReloaded = true")

    # Answered from a shell, as the page says: the page follows the run to its end.
    branchwork(branchwork_home, "runs", "answer", name, "--value", "true")
    expect(page.locator(".run-header .badge")).to_have_text("completed", timeout=30_000)
    expect(waiting).to_have_count(0)
    expect(page.locator(".action-reason")).to_have_count(0)
    expect(question.locator("td").last).to_have_text("true")
    assert page.evaluate("window.notReloaded") is True


def test_a_box_opens_onto_its_step_runs_however_many_step_names_are_drawn(
    branchwork_home, project, dashboard, page
):
    """With 300 step names drawn, clicking a box did nothing (and with 261 to 299 it opened
    onto a few of its step runs only)."""
    from playwright.sync_api import expect

    branchwork(branchwork_home, "run", f"{project / 'pipelines.py'}:wide")
    page.goto(dashboard)
    page.locator("table.runs a.run-link").click()
    expect(page.locator("g.node")).to_have_count(300)
    expect(page.locator(".graph-wrap")).to_contain_text(
        "Only the first 300 step names are drawn; 1 more (1 step runs) are not."
    )
    names = [f"s{i:03d}" for i in (0, 50, 100, 150, 200, 250)]
    for name in names:
        node = page.locator(f"g.node[data-step='{name}']")
        node.locator(".node-head").click()
        expect(node.locator(".node-head")).to_have_attribute("aria-expanded", "true")
        expect(node.locator("a.chip text")).to_have_text(name)
        expect(node).to_contain_text("1–1 of 1")
    # A sixth open box closes the first, and the graph says so.
    first = page.locator("g.node[data-step='s000']")
    expect(first.locator(".node-head")).to_have_attribute("aria-expanded", "false")
    expect(first.locator("a.chip")).to_have_count(0)
    expect(page.locator(".graph-notice")).to_have_text(
        "Closed s000: at most 5 boxes are open at once."
    )
    expect(page.locator("g.node a.chip")).to_have_count(5)


def test_the_runs_list_past_its_last_page_or_at_no_page_says_so(
    branchwork_home, project, dashboard, page, tmp_path
):
    """Past the end it read "No runs yet." over a pager of "101–2 of 2"; a page that is no
    number showed the server's validation message."""
    from playwright.sync_api import expect

    (tmp_path / "marker").touch()
    run_fanout(branchwork_home, project, tmp_path, 1)
    run_fanout(branchwork_home, project, tmp_path, 1)
    page.goto(dashboard + "#/runs?page=3")
    empty = page.locator("p.empty")
    expect(empty).to_have_text("Page 3 is empty: there are 2 runs, on one page. Last page")
    expect(page.locator(".page-info")).to_have_text("page 3 of 1")
    expect(page.get_by_role("button", name="Next ›")).to_be_disabled()
    empty.get_by_role("link", name="Last page").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    expect(page.locator(".page-info")).to_have_text("1–2 of 2")

    page.goto(dashboard + "#/runs?status=completed&page=9")
    page.get_by_role("button", name="‹ Prev").click()  # to the last page, with the filter
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    assert "status=completed" in page.url

    for bad in ("abc", "0", "1.5"):
        page.goto(dashboard + f"#/runs?page={bad}")
        expect(empty).to_have_text(
            f"“{bad}” is not a page number: pages are numbered 1, 2, 3… First page"
        )
        expect(page.locator("table.runs")).to_have_count(0)
