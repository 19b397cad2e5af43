"""The Board and the Playground in a real headless Chromium (Debian's ``chromium``, driven by Playwright for
Python) against a real head with real Ray: login, live run state, DAG, logs, tracebacks, cancel, and the
Playground's drag, connect, run, save, export and validation.

Every request the pages make is recorded; a test fails on any that leaves the head's origin. Screenshots
of both UIs are taken on the way; with ``LATTICE_UI_SCREENSHOTS=1`` they go to ``docs/images/`` and
``assets/`` (shown in ``docs/ui.md`` and the README), otherwise to a temporary folder, so a test run
never changes tracked files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headproc import HeadProcess

from lattice import LatticeClient, task

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (see .ci/run)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ([ROOT / "docs" / "images", ROOT / "assets"] if os.environ.get("LATTICE_UI_SCREENSHOTS") == "1"
         else [Path(tempfile.gettempdir()) / "lattice-ui-screenshots"])
TIMEOUT_MS = 60_000


@task(inputs=["n"], outputs=["total"])
def count_up(params):
    for i in range(params["n"]):
        print(f"step {i} of {params['n']}", flush=True)
        time.sleep(0.5)
    return {"total": params["n"]}


@task(inputs=["total"], outputs=["doubled"])
def double(params):
    return {"doubled": params["total"] * 2}


@task(inputs=["x"], outputs=["y"])
def explode(params):
    raise ValueError(f"cannot handle {params['x']}")


@task(inputs=["seconds"], outputs=["done"])
def long_sleep(params):
    time.sleep(params["seconds"])
    return {"done": True}


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadProcess]:
    proc = HeadProcess(tmp_path_factory.mktemp("webhead"), extra_args=["--playground"]).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(head: HeadProcess) -> Iterator[LatticeClient]:
    with LatticeClient(head.url, token=head.token, progress=False) as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


class Page:
    """A browser page that records every request it makes (to fail on any leaving the head's origin)."""

    def __init__(self, browser: Any, head: HeadProcess, tmp_path: Path) -> None:
        self.head = head
        self.context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.tmp_path = tmp_path

    def foreign(self) -> list[str]:
        origin = urlsplit(self.head.url).netloc
        return [url for url in self.requests
                if not url.startswith(("data:", f"blob:{self.head.url}")) and urlsplit(url).netloc != origin]

    def login(self, path: str, token: str | None = None) -> Any:
        page = self.page
        page.goto(self.head.url + path)
        page.get_by_label("Token").fill(token or self.head.token)
        page.get_by_role("button", name="Sign in").click()
        return page

    def shot(self, name: str) -> None:
        for folder in SHOTS:
            folder.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(folder / name))


@pytest.fixture
def ui(browser: Any, head: HeadProcess, tmp_path: Path) -> Iterator[Page]:
    page = Page(browser, head, tmp_path)
    yield page
    try:
        assert page.requests, "the page made no request at all"
        assert page.foreign() == [], f"requests left the head's origin: {page.foreign()}"
    finally:
        page.context.close()


def _wait_state(client: LatticeClient, run_id: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get_run(run_id)["state"] != state:
        assert time.monotonic() < deadline, f"run {run_id} never reached {state}: {client.get_run(run_id)['state']}"
        time.sleep(0.2)


# ---- serving and auth ------------------------------------------------------------------------------------

def test_pages_load_without_the_token_but_the_api_needs_it(head: HeadProcess) -> None:
    import httpx

    page = httpx.get(f"{head.url}/board")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and f"ws://127.0.0.1:{head.port} " in csp
    assets = [src for src in page.text.split('"') if src.startswith("/ui/assets/")]
    assert assets and all(httpx.get(head.url + src).status_code == 200 for src in assets)
    assert httpx.get(f"{head.url}/ui/assets/..%2Fboard.html").status_code == 404
    assert httpx.get(f"{head.url}/api/v1/runs").status_code == 401
    assert httpx.get(f"{head.url}/api/v1/catalog/tasks").status_code == 401
    assert httpx.get(f"{head.url}/playground").status_code == 200
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{head.port}/api/v1/runs/any/events/ws") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_playground_is_off_without_the_flag(head_factory: Any) -> None:
    import httpx

    other = head_factory()
    answer = httpx.get(f"{other.url}/playground")
    assert answer.status_code == 404
    assert "--playground" in answer.json()["error"]["hint"]
    assert httpx.get(f"{other.url}/board").status_code == 200


def test_wrong_token_is_refused_then_the_right_one_opens_the_board(ui: Page) -> None:
    page = ui.login("/board", token="not-the-token")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "refused" in alert.inner_text()
    ui.shot("board-login.png")
    page.get_by_label("Token").fill(ui.head.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("runs-table").wait_for()
    # the token is kept for the session: a reload does not ask again
    page.reload()
    page.get_by_test_id("runs-table").wait_for()


def test_board_shows_the_local_node(ui: Page, client: LatticeClient) -> None:
    node = client.nodes()[0]
    page = ui.login("/board#/cluster")
    row = page.get_by_test_id(f"node-{node['node_id']}")
    row.wait_for()
    assert "alive" in row.inner_text()
    # live utilization, sampled on the node: a CPU % and the machine's memory appear by themselves
    page.wait_for_function(
        f"() => /\\d+(\\.\\d+)? \\/ 100 %/.test(document.querySelector('[data-testid=node-cpu-{node['node_id']}]')"
        "?.textContent ?? '')")
    assert " MB" in page.get_by_test_id(f"node-mem-{node['node_id']}").inner_text()
    page.get_by_test_id("queues-table").wait_for()
    ui.shot("board-cluster.png")


# ---- the Board follows runs ------------------------------------------------------------------------------

def test_board_follows_a_run_from_running_to_succeeded(ui: Page, client: LatticeClient) -> None:
    wf = client.create_workflow("count-and-double")
    first = wf.add_task(count_up, inputs={"n": 6})
    wf.add_task(double, inputs={"total": first.outputs["total"]})
    run_id = wf.run(tags={"suite": "web"})
    page = ui.login(f"/board#/runs/{run_id}")
    state = page.get_by_test_id("run-state")
    page.locator('[data-testid="run-state"] [data-state="running"]').wait_for()
    page.locator('[data-testid="dag-task-count_up"]').wait_for()
    page.locator('[data-testid="dag-task-double"]').wait_for()
    page.locator('[data-testid="run-state"] [data-state="succeeded"]').wait_for()
    assert "succeeded" in state.inner_text()
    page.locator('[data-testid="dag-task-double"][data-state="succeeded"]').wait_for()
    page.get_by_test_id("task-panel").get_by_text("count_up").click()
    assert "step 5 of 6" in page.get_by_test_id("stdout-count_up").inner_text()
    assert page.get_by_test_id("output-count_up-total").inner_text().strip() == "6"
    page.get_by_test_id("timeline").wait_for()
    ui.shot("board-run.png")
    # the runs list finds it by search, with the head's total
    page.goto(f"{ui.head.url}/board#/runs")
    page.get_by_label("search").fill("count-and-double")
    page.get_by_test_id(f"run-row-{run_id}").wait_for()
    assert page.get_by_test_id(f"run-counts-{run_id}").inner_text() == "2 succeeded"
    ui.shot("board-runs.png")


@task(inputs=["seconds"], outputs=["done"], cpu=0)  # holds no core: the tests after it need both
def talk_then_sleep(params):
    print("hello from a running task <b>not bold</b>", flush=True)
    time.sleep(params["seconds"])
    print("after the sleep", flush=True)
    return {"done": True}


def test_board_shows_a_live_log_line_from_a_running_task(ui: Page, client: LatticeClient) -> None:
    wf = client.create_workflow("talks-then-sleeps")
    wf.add_task(talk_then_sleep, inputs={"seconds": 30})
    run_id = wf.run()
    try:
        page = ui.login(f"/board#/runs/{run_id}")
        page.locator('[data-testid="dag-task-talk_then_sleep"][data-state="running"]').wait_for()
        page.locator('[data-testid="dag-task-talk_then_sleep"]').click()
        live = page.get_by_test_id("live-log-talk_then_sleep")
        live.wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=live-log-talk_then_sleep]')?.textContent"
            ".includes('hello from a running task')")
        # the task is still running (it sleeps 30 s), and its text is shown as text, never as markup
        assert client.get_run(run_id)["state"] == "running"
        assert "<b>not bold</b>" in live.inner_text() and live.locator("b").count() == 0
        assert "after the sleep" not in live.inner_text()
        ui.shot("board-live-log.png")
    finally:
        client.cancel(run_id)


def test_board_shows_a_failing_tasks_traceback(ui: Page, client: LatticeClient) -> None:
    wf = client.create_workflow("explodes")
    wf.add_task(explode, inputs={"x": 41})
    run_id = wf.run()
    _wait_state(client, run_id, "failed")
    page = ui.login(f"/board#/runs/{run_id}")
    page.locator('[data-testid="dag-task-explode"][data-state="failed"]').wait_for()
    page.locator('[data-testid="dag-task-explode"]').click()
    traceback = page.get_by_test_id("traceback")
    traceback.wait_for()
    text = traceback.inner_text()
    assert "ValueError" in text and "cannot handle 41" in text and "Traceback" in text
    assert "cannot handle 41" in page.get_by_test_id("run-error").inner_text()
    ui.shot("board-failure.png")


def test_cancel_from_the_board_stops_a_running_run(ui: Page, client: LatticeClient) -> None:
    wf = client.create_workflow("sleeps")
    wf.add_task(long_sleep, inputs={"seconds": 120})
    run_id = wf.run()
    _wait_state(client, run_id, "running")
    page = ui.login(f"/board#/runs/{run_id}")
    page.locator('[data-testid="run-state"] [data-state="running"]').wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.locator('[data-testid="run-state"] [data-state="cancelled"]').wait_for()
    assert client.get_run(run_id)["state"] == "cancelled"


def test_runs_list_pages_and_filters_on_the_head(client: LatticeClient, head: HeadProcess) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {head.token}"}
    all_runs = httpx.get(f"{head.url}/api/v1/runs?limit=2", headers=headers).json()
    assert all_runs["total"] >= 3 and len(all_runs["runs"]) == 2
    failed = httpx.get(f"{head.url}/api/v1/runs?state=failed", headers=headers).json()
    assert failed["total"] >= 1 and all(r["state"] == "failed" for r in failed["runs"])
    found = httpx.get(f"{head.url}/api/v1/runs?q=EXPLODES", headers=headers).json()
    assert found["total"] >= 1 and all(r["workflow_name"] == "explodes" for r in found["runs"])
    assert httpx.get(f"{head.url}/api/v1/runs?q=no-such-run-anywhere", headers=headers).json()["total"] == 0


def test_metrics_history_is_sampled_by_the_head(ui: Page) -> None:
    page = ui.login("/board#/metrics")
    page.get_by_test_id("chart-Tasks per second").wait_for()
    page.wait_for_timeout(2500)
    ui.shot("board-metrics.png")


# ---- the Playground --------------------------------------------------------------------------------------

def _drag_to_canvas(page: Any, builtin: str, x: int, y: int) -> None:
    page.get_by_test_id(f"palette-{builtin}").drag_to(page.get_by_test_id("canvas"), target_position={"x": x, "y": y})
    page.get_by_test_id(f"node-{builtin}").wait_for()


def _connect(page: Any, source: str, output: str, target: str, input_: str) -> None:
    start = page.locator(f'.react-flow__handle.source[data-nodeid="{source}"][data-handleid="{output}"]')
    end = page.locator(f'.react-flow__handle.target[data-nodeid="{target}"][data-handleid="{input_}"]')
    a, b = start.bounding_box(), end.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()
    page.locator(f'.react-flow__edge[data-testid="rf__edge-{source}.{output}->{target}.{input_}"]').wait_for()


def _select(page: Any, node: str) -> None:
    page.get_by_test_id(f"node-{node}").locator("header").click()
    page.get_by_test_id("side-panel").wait_for()


def _split_join(page: Any) -> None:
    _drag_to_canvas(page, "text_split", 120, 160)
    _drag_to_canvas(page, "text_join", 520, 200)
    _connect(page, "text_split", "result", "text_join", "items")
    _select(page, "text_split")
    page.locator("#input-text").fill("alpha,beta,gamma")
    page.locator("#input-sep").fill(",")
    _select(page, "text_join")
    page.locator("#input-sep").fill(" + ")


def test_playground_drag_connect_run_and_read_the_result(ui: Page, client: LatticeClient) -> None:
    page = ui.login("/playground")
    _split_join(page)
    page.get_by_role("button", name="Run").click()
    page.locator('[data-testid="run-state"]', has_text="succeeded").wait_for()
    page.locator('[data-testid="node-text_join"][data-state="succeeded"]').wait_for()
    _select(page, "text_join")
    result = page.get_by_test_id("result-text_join-result")
    result.wait_for()
    assert json.loads(result.inner_text()) == "alpha + beta + gamma"
    ui.shot("playground-run.png")
    run_id = page.get_by_test_id("run-status").locator("code").inner_text()
    assert client.get_results(run_id, timeout=10)["result"] == "alpha + beta + gamma"
    assert page.get_by_test_id("board-link").get_attribute("href") == f"/board#/runs/{run_id}"


def test_playground_palette_has_the_agent_builtins_and_runs_python_code(ui: Page, client: LatticeClient) -> None:
    page = ui.login("/playground")
    for builtin in ("python_code", "http_request", "llm_chat", "file_read", "file_write"):
        page.get_by_test_id(f"palette-{builtin}").wait_for()
    _drag_to_canvas(page, "llm_chat", 520, 360)
    _select(page, "llm_chat")
    assert page.locator("#input-api_key").get_attribute("type") == "password"  # a key is never shown back
    page.keyboard.press("Delete")
    _drag_to_canvas(page, "python_code", 160, 160)
    _drag_to_canvas(page, "file_write", 560, 200)
    _connect(page, "python_code", "result", "file_write", "content")
    _select(page, "python_code")
    page.locator("#input-code").fill("result = {'sum': sum(inputs['xs']), 'words': ' '.join(inputs['w'])}")
    page.locator("#input-inputs").fill('{"xs": [1, 2, 3, 4], "w": ["live", "logs"]}')
    _select(page, "file_write")
    page.locator("#input-path").fill("out/result.json")
    page.get_by_role("button", name="Run").click()
    page.locator('[data-testid="run-state"]', has_text="succeeded").wait_for()
    _select(page, "python_code")
    result = page.get_by_test_id("result-python_code-result")
    result.wait_for()
    assert json.loads(result.inner_text()) == {"sum": 10, "words": "live logs"}
    _select(page, "file_write")
    written = page.get_by_test_id("result-file_write-result")
    written.wait_for()
    assert json.loads(written.inner_text())["path"] == "out/result.json"
    ui.shot("playground-python-code.png")


def test_playground_save_reload_export_and_submit_from_the_sdk(ui: Page, client: LatticeClient) -> None:
    page = ui.login("/playground")
    _split_join(page)
    page.get_by_role("button", name="Save").click()
    page.reload()
    page.get_by_role("button", name="Load").click()
    page.get_by_test_id("node-text_split").wait_for()
    page.get_by_test_id("node-text_join").wait_for()
    assert page.locator(".react-flow__edge").count() == 1
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    path = ui.tmp_path / "exported.json"
    download.value.save_as(path)
    spec = json.loads(path.read_text())
    assert spec["format"] == "lattice.workflow/v1"
    assert {t["builtin"] for t in spec["tasks"]} == {"text_split", "text_join"}
    run_id = client.start_run(client.submit_workflow(spec))
    assert client.get_results(run_id, timeout=60)["result"] == "alpha + beta + gamma"


def test_playground_refuses_a_cycle_and_a_missing_input_visibly(ui: Page) -> None:
    page = ui.login("/playground")
    _drag_to_canvas(page, "text_split", 120, 160)
    _drag_to_canvas(page, "text_join", 520, 200)
    page.get_by_role("button", name="Run").click()
    problems = page.get_by_test_id("problems")
    problems.wait_for()
    text = problems.inner_text()
    assert 'text_split: input "text" is missing' in text and 'text_join: input "items" is missing' in text
    assert page.locator(".task-node.invalid").count() == 2
    _connect(page, "text_split", "result", "text_join", "items")
    _connect(page, "text_join", "result", "text_split", "text")
    page.get_by_role("button", name="Run").click()
    page.get_by_test_id("problems").get_by_text("Cycle").wait_for()
    assert "text_split → text_join → text_split" in page.get_by_test_id("problems").inner_text()
    ui.shot("playground-invalid.png")
    assert page.get_by_test_id("run-status").count() == 0
    # undo removes the back edge: the cycle is gone, the missing input is back
    page.get_by_role("button", name="Undo").click()
    page.get_by_role("button", name="Validate").click()
    playwright_api.expect(problems).not_to_contain_text("Cycle")
    playwright_api.expect(problems).to_contain_text('text_split: input "text" is missing')
    _select(page, "text_split")
    page.locator("#input-text").fill("one two")
    page.get_by_role("button", name="Validate").click()
    page.get_by_test_id("message").get_by_text("The workflow is valid.").wait_for()


def test_sdk_export_opens_in_the_playground(ui: Page, client: LatticeClient) -> None:
    wf = client.create_workflow("from-sdk")
    first = wf.add_task(count_up, inputs={"n": 1})
    wf.add_task(double, inputs={"total": first.outputs["total"]})
    path = ui.tmp_path / "sdk.json"
    path.write_text(json.dumps(wf.export()))
    page = ui.login("/playground")
    page.get_by_test_id("import-file").set_input_files(str(path))
    page.get_by_test_id("node-count_up").wait_for()
    page.get_by_test_id("node-double").wait_for()
    page.get_by_role("button", name="Run").click()
    page.locator('[data-testid="run-state"]', has_text="succeeded").wait_for()
    _select(page, "double")
    assert page.get_by_test_id("result-double-doubled").inner_text().strip() == "2"


@task(inputs=["text"], outputs=["loud"], cpu=0.5)
def shout(params):
    """Upper-cases its text (a user task published to the palette)."""
    print("shouting", params["text"])
    return {"loud": str(params["text"]).upper()}


def test_a_registered_task_appears_in_the_palette_and_runs(ui: Page, client: LatticeClient) -> None:
    entry = client.register_task(shout)
    assert entry["kind"] == "registered" and entry["description"].startswith("Upper-cases")
    assert [p["name"] for p in entry["inputs"]] == ["text"] and [p["name"] for p in entry["outputs"]] == ["loud"]
    page = ui.login("/playground")
    assert "Upper-cases its text" in page.get_by_test_id("palette-shout").get_attribute("title")
    _drag_to_canvas(page, "prompt_template", 120, 160)
    _drag_to_canvas(page, "shout", 520, 200)
    _connect(page, "prompt_template", "result", "shout", "text")
    _select(page, "prompt_template")
    page.locator("#input-template").fill("hello {who}")
    page.locator("#input-values").fill('{"who": "ada"}')
    page.get_by_role("button", name="Run").click()
    page.locator('[data-testid="run-state"]', has_text="succeeded").wait_for()
    _select(page, "shout")
    assert json.loads(page.get_by_test_id("result-shout-loud").inner_text()) == "HELLO ADA"
    assert page.locator("#res-cpu").input_value() == "0.5"


def test_registering_a_builtins_name_is_refused(client: LatticeClient) -> None:
    from lattice.errors import LatticeError

    bad = task(inputs=["text"], outputs=["result"], name="text_split")(lambda params: {"result": params})
    with pytest.raises(LatticeError, match="builtin"):
        client.register_task(bad)


def test_registered_tasks_are_per_tenant_and_a_read_key_cannot_register(head: HeadProcess) -> None:
    import httpx

    admin = {"Authorization": f"Bearer {head.token}"}
    keys = {}
    for name, role in (("alice", "submit"), ("bob", "submit"), ("reader", "read")):
        answer = httpx.post(f"{head.url}/api/v1/keys", json={"name": name, "role": role}, headers=admin)
        assert answer.status_code == 201, answer.text
        keys[name] = answer.json()["key"]
    with LatticeClient(head.url, token=keys["alice"], progress=False) as alice:
        alice.register_task(shout, description="alice's shout")
    def catalog(key: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{head.url}/api/v1/catalog/tasks", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        return answer.json()["tasks"]

    bobs = catalog(keys["bob"])
    assert any(t["name"] == "text_split" for t in bobs)
    assert not any(t["description"] == "alice's shout" for t in bobs)
    with LatticeClient(head.url, token=keys["reader"], progress=False) as reader:
        from lattice.errors import LatticeError

        with pytest.raises(LatticeError, match="read"):
            reader.register_task(shout)
    assert any(t["description"] == "alice's shout" for t in catalog(keys["alice"]))
    assert any(t["description"] == "alice's shout" for t in catalog(head.token))  # the admin sees all
