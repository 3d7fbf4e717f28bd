"""The dashboard's JSON API over real runs in the test's store: paging, filters, the shapes
the CLI prints, aggregates of a fan-out, a failed run's items and logs, lineage, escaping,
errors, authentication, and that reading never writes."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from branchwork import Client
from branchwork.cli.app import app as cli_app
from branchwork.exceptions import PipelineRunFailedError, RunPaused
from branchwork.metadata.store import dispose_engines

TOKEN = "a-test-token-of-some-length"


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def failed_fan(pipelines, project: Path, item: int = 3, n: int = 4):
    """A failed run of `fan` whose last item fails: every other one has run by then."""
    (project / f"fail-{item}").touch()
    with pytest.raises(PipelineRunFailedError):
        pipelines("fan")(folder=str(project), n=n)
    return Client().list_pipeline_runs(pipeline="fan", limit=1)[0]


def test_runs_list_pages_and_filters_newest_first_with_counts(pipelines, project, api):
    failed = failed_fan(pipelines, project)
    (project / "fail-3").unlink()
    pipelines("fan")(folder=str(project), n=3)
    pipelines("chain")(folder=str(project))
    client = api()

    runs = ok(client.get("/api/runs"))
    assert runs["total"] == 3 and runs["page"] == 1 and runs["page_size"] == 50
    newest, completed_fan, oldest = runs["items"]
    assert [r["pipeline"] for r in runs["items"]] == ["chain", "fan", "fan"]
    assert oldest["name"] == failed.name and oldest["status"] == "failed"
    assert oldest["kind"] == "dynamic" and newest["kind"] == "static"
    assert oldest["counts"]["completed"] == 4 and oldest["counts"]["failed"] == 1
    assert oldest["step_count"] == 5  # count + 4 x work; total never ran
    assert completed_fan["counts"]["completed"] + completed_fan["counts"]["cached"] == 5
    assert oldest["duration_s"] == oldest["duration_seconds"] > 0

    first, second = (
        ok(client.get("/api/runs", params={"page": page, "page_size": 2})) for page in (1, 2)
    )
    assert [r["name"] for r in first["items"] + second["items"]] == [
        r["name"] for r in runs["items"]
    ]
    assert len(first["items"]) == 2 and second["total"] == 3

    def names(**params) -> list[str]:
        return [r["name"] for r in ok(client.get("/api/runs", params=params))["items"]]

    assert names(pipeline="chain") == [newest["name"]]
    assert names(status="failed") == [failed.name]
    assert names(status="completed,failed") == [r["name"] for r in runs["items"]]
    assert names(q="CHAIN") == [newest["name"]]  # name or pipeline, any case
    assert names(q=failed.id) == [failed.name]
    assert names(since=newest["created"]) == [newest["name"]]
    assert names(until=newest["created"]) == [completed_fan["name"], failed.name]

    too_big = client.get("/api/runs", params={"page_size": 201})
    assert too_big.status_code == 422
    assert too_big.json() == {"detail": "page_size: Input should be less than or equal to 200"}
    wrong = client.get("/api/runs", params={"status": "done"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"].startswith("'done' is not a run status; use one of")


def test_a_run_item_is_the_dict_runs_list_prints(pipelines, project, api):
    pipelines("fan")(folder=str(project), n=2)
    printed = CliRunner().invoke(cli_app, ["runs", "list", "--output", "json"])
    assert printed.exit_code == 0, printed.output
    [cli_run] = json.loads(printed.stdout)
    [api_run] = ok(api().get("/api/runs"))["items"]
    for key, value in cli_run.items():
        if key == "outputs":  # the API's artifact dicts hold every key the CLI's do
            assert [{k: o[k] for k in value[0]} for o in api_run["outputs"]] == value
        else:
            assert api_run[key] == value, key


def test_a_failed_dynamic_run_its_groups_graph_failed_items_and_step_page(pipelines, project, api):
    run = failed_fan(pipelines, project)
    client = api()

    detail = ok(client.get(f"/api/runs/{run.name[:-3]}"))  # a unique prefix, as the CLI
    assert detail["run"]["name"] == run.name
    assert detail["run"]["parameters"] == {"folder": str(project), "n": 4}
    assert detail["run"]["failed_step"] == "work_4"
    assert detail["run"]["exception_type"] == "ValueError"
    assert "Traceback" in detail["run"]["traceback"]
    assert [(s["step_name"], s["total"]) for s in detail["steps"]] == [("count", 1), ("work", 4)]
    assert detail["steps"][1]["counts"]["failed"] == 1
    assert detail["counts"] == detail["run"]["counts"]

    graph = ok(client.get(f"/api/runs/{run.id}/graph"))
    assert [g["id"] for g in graph["groups"]] == ["count", "work"]
    assert graph["edges"] == [{"from": "count", "to": "work", "kind": "value"}]
    work = graph["groups"][1]
    assert work["duration"]["p50"] <= work["duration"]["p95"] <= work["duration"]["max"]
    assert graph["truncated"] is False

    failed = ok(client.get(f"/api/runs/{run.id}/failed"))
    assert failed["total"] == 1
    [item] = failed["items"]
    assert item["invocation"] == "work_4" and item["step_name"] == "work"
    assert item["attempt"] == 1 and item["exception_type"] == "ValueError"
    assert item["error"] == "<img src=x onerror=alert(3)> item 3 failed"  # raw text, in JSON

    step = ok(client.get(f"/api/runs/{run.id}/steps/work_4"))
    assert step["step"]["invocation_id"] == "work_4" and step["step"]["status"] == "failed"
    assert step["metadata"] == {"item": 3}
    assert step["config"]["value_inputs_of"] == "work"  # read `count` as `work` was
    first = ok(client.get(f"/api/runs/{run.id}/steps/work"))
    assert first["config"]["value_inputs"] == ["count"]
    assert step["cache_verdict"] == "miss"
    [attempt] = step["attempts"]
    assert attempt["exception_message"] == "<img src=x onerror=alert(3)> item 3 failed\nsecond line"
    assert attempt["traceback"].rstrip().endswith("second line")
    assert step["outputs"] == []

    logs = ok(client.get(f"/api/runs/{run.id}/steps/work_4/logs"))
    assert logs == {
        "text": "<script>alert(3)</script> item 3\n",
        "offset": 0,
        "next_offset": None,
        "total": 33,
    }
    head = ok(client.get(f"/api/runs/{run.id}/steps/work_4/logs", params={"limit": 8}))
    assert head == {"text": "<script>", "offset": 0, "next_offset": 8, "total": 33}
    tail = ok(client.get(f"/api/runs/{run.id}/steps/work_4/logs", params={"offset": 31}))
    assert tail == {"text": "3\n", "offset": 31, "next_offset": None, "total": 33}


def test_not_found_answers_say_what_the_cli_says(pipelines, project, api):
    run = failed_fan(pipelines, project)
    client = api()
    cli = CliRunner()

    def detail(path: str) -> str:
        response = client.get(path)
        assert response.status_code == 404, response.text
        return response.json()["detail"]

    unknown_run = cli.invoke(cli_app, ["runs", "show", "no-such-run"])
    assert f"Error: {detail('/api/runs/no-such-run')}" == unknown_run.stderr.strip()
    unknown_step = cli.invoke(cli_app, ["runs", "logs", run.name, "wor"])
    assert f"Error: {detail(f'/api/runs/{run.name}/steps/wor')}" == unknown_step.stderr.strip()
    assert detail(f"/api/runs/{run.name}/groups/train/items") == (
        f"Run '{run.name}' has no step 'train'; its steps: count, work."
    )
    assert detail(f"/api/runs/{run.name}/steps/work/logs?attempt=2") == (
        f"Invocation 'work' of run '{run.name}' has no attempt 2 (it has 1)."
    )
    assert detail("/api/artifacts/no-such-version/consumers") == (
        "No artifact version with id 'no-such-version'."
    )


def test_bad_parameters_answer_422_naming_them(pipelines, project, api):
    """Out of range, they were a 500 (an OFFSET past 64 bits, a date before year 1); an
    unknown or upper-case state of a step's items answered an empty page."""
    run = failed_fan(pipelines, project)
    client = api()

    def refused(path: str) -> str:
        response = client.get(path)
        assert response.status_code == 422, response.text
        return str(response.json()["detail"])

    huge = 200_000_000_000_000_000
    for path in (
        f"/api/runs?page={huge}",
        f"/api/runs/{run.name}/timeline?page={huge}",
        f"/api/runs/{run.name}/failed?page={huge}",
        f"/api/runs/{run.name}/groups/work/items?page={huge}",
        f"/api/runs/{run.name}/steps/work_4/logs?offset=99999999999999999999",
    ):
        assert refused(path)
    assert refused("/api/runs?since=0001-01-01T00:00:00%2B14:00") == (
        "since=0001-01-01T00:00:00+14:00 is out of range."
    )
    assert refused(f"/api/runs/{run.name}/groups/work/items?status=bogus").startswith(
        "'bogus' is not an invocation state; use one of not_started, initializing, running,"
    )
    items = ok(client.get(f"/api/runs/{run.name}/groups/work/items", params={"status": "FAILED"}))
    assert [item["invocation"] for item in items["items"]] == ["work_4"]
    last = ok(client.get(f"/api/runs/{run.name}/failed", params={"page": 1_000_000_000}))
    assert (last["items"], last["total"]) == ([], 1)


def test_what_a_static_run_planned_but_never_started_is_listed_and_says_why(
    pipelines, project, api
):
    """The graph counted 'total' not started, but its list was empty and its page a bare
    'has no invocation'."""
    (project / "fail-1").touch()
    with pytest.raises(PipelineRunFailedError):
        pipelines("chain")(folder=str(project))
    run = Client().list_pipeline_runs(pipeline="chain", limit=1)[0]
    client = api()
    graph = ok(client.get(f"/api/runs/{run.name}/graph"))
    assert {g["id"]: g["counts"]["not_started"] for g in graph["groups"]} == {
        "work": 0,
        "total": 1,
    }
    items = ok(client.get(f"/api/runs/{run.name}/groups/total/items"))
    assert [(i["invocation"], i["status"], i["attempt"]) for i in items["items"]] == [
        ("total", "not_started", None)
    ]
    assert items["total"] == 1
    waiting = ok(client.get(f"/api/runs/{run.name}/groups/total/items?status=not_started"))
    assert waiting["items"] == items["items"]
    failed = ok(client.get(f"/api/runs/{run.name}/groups/work/items?status=failed"))
    assert [i["invocation"] for i in failed["items"]] == ["work_2"]
    pages = [ok(client.get(f"/api/runs/{run.name}/timeline?page_size=3&page={n}")) for n in (1, 2)]
    assert [len(page["items"]) for page in pages] == [3, 1]
    assert pages[1]["items"][0]["invocation"] == "total" and pages[1]["total"] == 4
    response = client.get(f"/api/runs/{run.name}/steps/total")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"Invocation 'total' of run '{run.name}' never started: the run ended first (a step "
        "it depends on failed, or the run was stopped)."
    )


def test_a_fan_out_of_300_items_comes_one_page_at_a_time(pipelines, project, api):
    pipelines("fan")(folder=str(project), n=320)
    client = api()
    run = ok(client.get("/api/runs/latest"))["run"]
    assert run["counts"]["completed"] == 322

    seen: list[str] = []
    for page in (1, 2):
        items = ok(
            client.get(
                f"/api/runs/{run['name']}/groups/work/items",
                params={"page": page, "page_size": 200},
            )
        )
        assert items["total"] == 320 and len(items["items"]) == (200 if page == 1 else 120)
        seen += [item["invocation"] for item in items["items"]]
    assert sorted(seen) == sorted(["work"] + [f"work_{i}" for i in range(2, 321)])
    starts = [item["start"] for item in items["items"]]
    assert starts == sorted(starts)

    timeline = ok(client.get(f"/api/runs/{run['name']}/timeline", params={"page_size": 100}))
    assert timeline["total"] == 322 and len(timeline["items"]) == 100
    assert [g["step_name"] for g in timeline["groups"]] == ["count", "work", "total"]
    work = timeline["groups"][1]
    assert work["total"] == 320 and 0 <= work["p50"] <= work["p95"] <= work["max"]
    durations = sorted(
        item["duration_s"]
        for page in (1, 2)
        for item in ok(
            client.get(
                f"/api/runs/{run['name']}/groups/work/items",
                params={"page": page, "page_size": 200},
            )
        )["items"]
    )
    assert (work["p50"], work["p95"], work["max"]) == pytest.approx(
        (durations[159], durations[303], durations[319]), abs=1e-6
    )  # nearest rank: the 160th, 304th and 320th of 320
    for straggler in work["stragglers"]:
        assert straggler["duration_s"] > work["p95"] * 1.5
    assert len(work["stragglers"]) <= 10

    total = ok(client.get(f"/api/runs/{run['name']}/steps/total"))  # a fan-in of 320
    assert len(total["inputs"]) == 50 and total["inputs_total"] == 320
    assert len(total["step"]["parents"]) == 50 and total["step"]["parents_total"] == 320
    assert len(total["config"]["inputs"]["values"]) == 51  # 50 and "... 270 more"
    last = ok(client.get(f"/api/runs/{run['name']}/steps/total/inputs", params={"page": 7}))
    assert [i["name"] for i in last["items"]] == [f"values[{i}]" for i in range(300, 320)]
    assert last["items"][-1]["producer"] == {"run": run["name"], "invocation": "work_320"}

    graph = ok(client.get(f"/api/runs/{run['name']}/graph"))
    assert sorted((e["from"], e["to"], e["kind"]) for e in graph["edges"]) == [
        ("count", "work", "value"),
        ("work", "total", "data"),
    ]  # total read count too, but through work: that value edge is not drawn


def test_a_static_run_and_the_step_page_lineage_across_runs(pipelines, project, api):
    pipelines("fan")(folder=str(project), n=3)
    pipelines("chain")(folder=str(project))  # every step a cache hit of fan's
    client = api()
    chain, fan = ok(client.get("/api/runs"))["items"]
    assert chain["kind"] == "static" and chain["counts"]["cached"] == 4

    total = ok(client.get(f"/api/runs/{chain['name']}/steps/total"))
    assert [i["name"] for i in total["inputs"]] == ["values[0]", "values[1]", "values[2]"]
    assert total["inputs_total"] == 3
    assert [i["artifact"]["preview"]["text"] for i in total["inputs"]] == ["0", "2", "4"]
    producers = [i["producer"] for i in total["inputs"]]
    assert producers == [  # made by fan, reused by chain
        {"run": fan["name"], "invocation": name} for name in ("work", "work_2", "work_3")
    ]
    assert total["step"]["cached_from_run"] == fan["name"]
    [output] = total["outputs"]
    assert output["artifact"]["preview"]["text"] == "6"
    assert output["artifact"]["data_type"] == "builtins.int"
    assert output["consumers"] == {"items": [], "page": 1, "page_size": 20, "total": 0}

    work = ok(client.get(f"/api/runs/{fan['name']}/steps/work"))
    [produced] = work["outputs"]
    consumers = produced["consumers"]
    assert consumers["total"] == 2
    assert {c["run"] for c in consumers["items"]} == {fan["name"], chain["name"]}
    assert {c["invocation"] for c in consumers["items"]} == {"total"}
    more = ok(client.get(f"/api/artifacts/{produced['artifact']['id']}/consumers"))
    assert more["items"] == consumers["items"]


def test_the_dashboard_reads_without_writing(pipelines, project, api, branchwork_home):
    run = failed_fan(pipelines, project)
    dispose_engines()  # checkpoints the write-ahead log into the file
    database = branchwork_home / "branchwork.db"

    def fingerprint() -> tuple[str, bool]:
        wal = database.with_name(database.name + "-wal")
        has_frames = wal.exists() and wal.stat().st_size > 0
        return hashlib.sha256(database.read_bytes()).hexdigest(), has_frames

    before = fingerprint()
    client = api()
    for path in (
        "/api/info",
        "/api/runs",
        "/api/runs?status=failed&q=fan",
        f"/api/runs/{run.name}",
        f"/api/runs/{run.name}/graph",
        f"/api/runs/{run.name}/timeline",
        f"/api/runs/{run.name}/failed",
        f"/api/runs/{run.name}/groups/work/items",
        f"/api/runs/{run.name}/steps/work_4",
        f"/api/runs/{run.name}/steps/work_4/logs",
        f"/api/runs/{run.name}/changes",
    ):
        assert client.get(path).status_code == 200, path
    dispose_engines()
    assert fingerprint() == before


def test_a_finished_run_is_not_live_and_its_token_stays_until_it_changes(pipelines, project, api):
    """Pages follow a run by asking whether it changed since the token of what they show:
    the run's answer and a step's carry it, and a finished run is not followed."""
    run = failed_fan(pipelines, project, item=1, n=2)
    client = api()
    shown = ok(client.get(f"/api/runs/{run.name}"))["changes"]
    assert shown["live"] is False
    assert ok(client.get(f"/api/runs/{run.name}/steps/work"))["changes"] == shown
    same = ok(client.get(f"/api/runs/{run.name}/changes", params={"since": shown["token"]}))
    assert same == {**shown, "changed": False}
    assert ok(client.get(f"/api/runs/{run.name}/changes"))["changed"] is True
    missing = client.get("/api/runs/nope/changes")
    assert missing.status_code == 404

    (project / "fail-1").unlink()
    resumed = client.post(f"/api/runs/{run.name}/resume", headers={"X-Branchwork-Action": "1"})
    assert resumed.status_code == 202, resumed.text
    moved = ok(client.get(f"/api/runs/{run.name}/changes", params={"since": shown["token"]}))
    assert moved["changed"] is True and moved["token"] != shown["token"]
    deadline = time.monotonic() + 60
    while ok(client.get(f"/api/runs/{run.name}/changes"))["live"]:
        assert time.monotonic() < deadline, "the resumed run did not end in 60 s"
        time.sleep(0.1)
    assert ok(client.get(f"/api/runs/{run.name}"))["run"]["status"] == "completed"


def test_a_paused_run_says_which_question_it_waits_on_and_how_to_answer(
    pipelines, project, api, monkeypatch
):
    """The run's answer had no questions: the page could not show what a paused run waits
    for, and offered a resume that is refused until it has an answer."""
    monkeypatch.chdir(project)
    with pytest.raises(RunPaused):
        pipelines("approve")()
    run = Client().list_pipeline_runs(pipeline="approve", limit=1)[0]
    client = api()

    detail = ok(client.get(f"/api/runs/{run.name}"))
    waiting = detail["waiting"]
    assert (waiting["question"], waiting["schema"]) == ("Ship it?", {"type": "boolean"})
    assert (waiting["timeout_seconds"], waiting["default"]) == (3600, False)
    assert waiting["asked_by"] == run.name
    assert waiting["answer_command"] == f"branchwork runs answer {run.name} --value VALUE"
    [question] = detail["waits"]
    assert (question["question"], question["state"], question["answer"]) == (
        "Ship it?",
        "waiting",
        None,
    )
    assert detail["changes"]["live"] is True  # an answer may come from the CLI
    refused = client.post(f"/api/runs/{run.name}/resume", headers={"X-Branchwork-Action": "1"})
    assert refused.status_code == 409
    assert "is paused, waiting for an answer to 'Ship it?'" in refused.json()["detail"]

    assert Client().answer_run(run.id, True) == "deployed to prod"
    after = ok(client.get(f"/api/runs/{run.name}"))
    assert after["waiting"] is None
    [answered] = after["waits"]
    assert (answered["state"], answered["answer"], answered["answered_by"]) == (
        "answered",
        True,
        "answer",
    )
    since = {"since": detail["changes"]["token"]}
    moved = ok(client.get(f"/api/runs/{run.name}/changes", params=since))
    assert moved == {**after["changes"], "changed": True, "live": False}


def test_a_question_past_its_timeout_no_longer_holds_the_run(pipelines, project, api, monkeypatch):
    monkeypatch.chdir(project)
    with pytest.raises(RunPaused):
        pipelines("asks")()
    run = Client().list_pipeline_runs(pipeline="asks", limit=1)[0]
    time.sleep(1.1)  # past the question's timeout: a resume takes its default
    detail = ok(api().get(f"/api/runs/{run.name}"))
    assert detail["waiting"] is None
    [question] = detail["waits"]
    assert (question["state"], question["default"]) == ("timed_out", "staging")


def test_a_log_offset_past_its_end_reads_nothing_there(pipelines, project, api):
    """SQLite's substr wraps offsets past 32 bits: 2**62 read the log from its start."""
    run = failed_fan(pipelines, project, item=1, n=2)
    client = api()
    logs = f"/api/runs/{run.name}/steps/work_2/logs"
    whole = ok(client.get(logs))
    assert whole["text"].startswith("<script>alert(1)</script> item 1")
    for offset in (whole["total"], 2**32 + 1, 2**62):
        past = ok(client.get(logs, params={"offset": offset}))
        assert past == {
            "text": "",
            "offset": whole["total"],
            "next_offset": None,
            "total": whole["total"],
        }


def test_a_search_longer_than_any_name_is_refused_naming_the_limit(api):
    """50,000 characters answered 500: 'LIKE or GLOB pattern too complex'."""
    client = api()
    assert ok(client.get("/api/runs", params={"q": "x" * 255}))["total"] == 0
    for length in (256, 50_000):
        refused = client.get("/api/runs", params={"q": "x" * length})
        assert refused.status_code == 422
        assert refused.json() == {"detail": "q: String should have at most 255 characters"}


def test_token_cookie_and_action_headers(pipelines, project, api):
    run = failed_fan(pipelines, project)
    client = api(token=TOKEN)

    refused = client.get("/api/runs")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["detail"].startswith("This dashboard needs its token")
    wrong = client.get("/api/runs", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.json()["detail"].startswith("Wrong dashboard token")
    assert client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

    opened = client.get(f"/?token={TOKEN}")
    assert opened.status_code == 200 and "<title>branchwork dashboard</title>" in opened.text
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"branchwork_dashboard_80={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/api/runs").status_code == 200  # the cookie is enough from now on

    no_header = client.post(f"/api/runs/{run.name}/stop")
    assert no_header.status_code == 403
    assert no_header.json()["detail"].startswith("Actions need the header 'X-Branchwork-Action: 1'")
    action = {"X-Branchwork-Action": "1"}
    cross_site = client.post(
        f"/api/runs/{run.name}/stop", headers={**action, "Origin": "http://evil.example"}
    )
    assert cross_site.status_code == 403 and "Cross-site action refused" in cross_site.text
    not_running = client.post(f"/api/runs/{run.name}/stop", headers=action)
    assert not_running.status_code == 409
    assert not_running.json() == {
        "detail": f"Run '{run.name}' is failed: only a running run can be stopped."
    }


def test_without_a_token_only_loopback_hosts_are_answered(api):
    client = api()
    assert client.get("/api/runs").status_code == 200
    for host in ("localhost:8237", "[::1]:8237"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200
    rebound = client.get("/api/runs", headers={"Host": "attacker.example"})
    assert rebound.status_code == 403
    assert "'attacker.example'" in rebound.json()["detail"]
    page = client.get("/")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/api/runs").headers["cache-control"] == "no-store"
    assert client.get("/api/openapi.json").json()["info"]["title"] == "branchwork dashboard"


def test_a_failed_run_resumed_through_the_api_completes(pipelines, project, api):
    run = failed_fan(pipelines, project, item=2, n=3)
    (project / "fail-2").unlink()
    client = api()
    action = {"X-Branchwork-Action": "1"}

    started = client.post(f"/api/runs/{run.name}/resume", headers=action)
    assert started.status_code == 202, started.text
    assert started.json()["run"] == run.name
    assert started.json()["status"] in ("initializing", "running", "completed")
    deadline = time.monotonic() + 60
    while ok(client.get(f"/api/runs/{run.id}"))["run"]["status"] != "completed":
        assert time.monotonic() < deadline, "the resumed run did not complete in 60 s"
        time.sleep(0.1)
    resumed = Client().get_pipeline_run(run.id)
    assert resumed.steps["work"].attempt == 1  # reused, not run again
    assert resumed.steps["work_3"].attempt == 2
    assert resumed.load_output() == 0 + 2 + 4
    # Its duration: both sessions' running time, from their recorded starts and ends.
    sessions = (run.end_time - run.start_time) + (resumed.end_time - resumed.start_time)
    shown = ok(client.get(f"/api/runs/{run.id}"))["run"]
    assert shown["duration_s"] == shown["duration_seconds"]
    assert shown["duration_s"] == pytest.approx(sessions.total_seconds(), abs=1e-6)
    assert resumed.start_time > run.end_time  # and not the time between them

    again = client.post(f"/api/runs/{run.name}/resume", headers=action)
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"Run '{run.name}' is completed: only failed or stopped runs, and paused "
        "ones once answered, can be resumed."
    }


def test_a_paused_run_resumes_through_the_api_once_its_question_has_an_answer(
    pipelines, project, api, monkeypatch
):
    """It answered 409 "only failed or stopped runs ..." though `runs resume` resumes a
    paused run whose question is answered or timed out (its default is then the answer)."""
    monkeypatch.chdir(project)
    with pytest.raises(RunPaused):
        pipelines("asks")()
    run = Client().list_pipeline_runs(pipeline="asks", limit=1)[0]
    client = api()
    action = {"X-Branchwork-Action": "1"}
    time.sleep(1.1)  # past the question's timeout

    started = client.post(f"/api/runs/{run.name}/resume", headers=action)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    while ok(client.get(f"/api/runs/{run.id}"))["run"]["status"] != "completed":
        assert time.monotonic() < deadline, "the resumed run did not complete in 60 s"
        time.sleep(0.1)
    assert Client().get_pipeline_run(run.id).load_output() == "deployed to staging"


def test_a_run_being_resumed_counts_only_its_earlier_sessions(pipelines, project, api):
    """Reopened for a resume, before its new session begins, a run's duration is its first
    session's: not the time since that session started."""
    from branchwork.metadata.runs import reopen_run
    from branchwork.metadata.store import get_engine

    run = failed_fan(pipelines, project, item=1, n=2)
    first = (run.end_time - run.start_time).total_seconds()
    assert reopen_run(get_engine(), run.id, run.stack, run.orchestrator)
    [listed] = ok(api().get("/api/runs"))["items"]
    assert listed["status"] == "initializing"
    assert listed["duration_s"] == listed["duration_seconds"] == pytest.approx(first, abs=1e-6)


def test_a_run_names_the_stack_that_started_it(pipelines, project, api):
    """A run started while the registered stack "team" is active names it; one started on
    the built-in stack says "default"; both name their orchestrator's flavor too."""
    pipelines("chain")(folder=str(project))
    for args in (
        ["orchestrator", "register", "team-local", "--flavor", "local"],
        ["stack", "register", "team", "--orchestrator", "team-local"],
        ["stack", "set", "team"],
    ):
        done = CliRunner().invoke(cli_app, args)
        assert done.exit_code == 0, done.output
    pipelines("fan")(folder=str(project), n=2)
    client = api()

    items = ok(client.get("/api/runs"))["items"]
    assert [(r["pipeline"], r["stack"], r["orchestrator"]) for r in items] == [
        ("fan", "team", "local"),
        ("chain", "default", "local"),
    ]
    assert ok(client.get(f"/api/runs/{items[0]['name']}"))["run"]["stack"] == "team"
    assert Client().get_pipeline_run(items[0]["id"]).stack == "team"


def test_a_child_run_names_its_parent_run_and_invocation(pipelines, project, api):
    pipelines("nest")(folder=str(project))
    client = api()
    parent, child = (Client().list_pipeline_runs(pipeline=name)[0] for name in ("nest", "chain"))
    shown = ok(client.get(f"/api/runs/{child.name}"))["run"]
    assert (shown["parent_run_id"], shown["parent_invocation_id"]) == (parent.id, "chain")
    top = ok(client.get(f"/api/runs/{parent.name}"))["run"]
    assert (top["parent_run_id"], top["parent_invocation_id"]) == (None, None)


def test_a_resume_that_cannot_start_says_why(pipelines, project, api):
    run = failed_fan(pipelines, project)
    (project / "dash_pipelines.py").unlink()  # the pipeline can no longer be imported
    response = api().post(f"/api/runs/{run.name}/resume", headers={"X-Branchwork-Action": "1"})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.startswith(f"Resuming run '{run.name}' failed: ")
    assert "dash_pipelines.py" in detail
    assert Client().get_pipeline_run(run.id).status == "failed"


def test_the_aggregates_on_postgresql(pipelines, project, api, postgres_server, monkeypatch):
    url = postgres_server.create_database("dashboard")
    with_password = url.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    monkeypatch.setenv("BRANCHWORK_STORE_URL", with_password)
    run = failed_fan(pipelines, project, item=29, n=30)
    client = api()

    store = ok(client.get("/api/info"))["store"]
    assert store.startswith("postgresql+psycopg://postgres:***@/dashboard?")
    assert "s3cret" not in store
    assert ok(client.get("/api/runs", params={"q": "FAN", "status": "failed"}))["total"] == 1
    graph = ok(client.get(f"/api/runs/{run.name}/graph"))
    assert graph["edges"] == [{"from": "count", "to": "work", "kind": "value"}]
    work = graph["groups"][1]
    assert (work["counts"]["completed"], work["counts"]["failed"], work["total"]) == (29, 1, 30)
    timeline = ok(client.get(f"/api/runs/{run.name}/timeline", params={"page_size": 200}))
    durations = sorted(  # what ran: those the failure stopped before they started do not
        i["duration_s"]
        for i in timeline["items"]
        if i["step_name"] == "work" and i["status"] in ("completed", "failed")
    )
    n = len(durations)
    spread = timeline["groups"][1]
    assert (spread["p50"], spread["p95"], spread["max"]) == pytest.approx(
        (durations[(n + 1) // 2 - 1], durations[(95 * n + 99) // 100 - 1], durations[-1]),
        abs=1e-6,
    )
    [failed] = ok(client.get(f"/api/runs/{run.name}/failed"))["items"]
    assert failed["invocation"] == "work_30"
    step = ok(client.get(f"/api/runs/{run.name}/steps/work_30"))
    assert step["attempts"][0]["exception_type"] == "ValueError"
    logs = ok(client.get(f"/api/runs/{run.name}/steps/work_30/logs", params={"offset": 8}))
    assert logs["text"] == "alert(29)</script> item 29\n" and logs["total"] == 35
    past = ok(client.get(f"/api/runs/{run.name}/steps/work_30/logs", params={"offset": 2**62}))
    assert (past["text"], past["offset"]) == ("", 35)
    changes = ok(client.get(f"/api/runs/{run.name}/changes", params={"since": "old"}))
    assert changes["changed"] is True and changes["live"] is False
    assert step["changes"] == {"token": changes["token"], "live": False}
