"""The Dagster UI, used as a person would: a real `dg dev`, a real browser, no mocks.

Phase A drops a domain folder into the landing root while `dg dev` runs and waits, doing
nothing else, until the landing sensor has turned it into a merged model. Phase B opens the UI in
headless Chromium: the asset graph with its stage groups, the domain's partition, a
materialization launched from the Materialize dialog and followed to its successful run, and the
evaluation metadata of the domain.

Screenshots land in test-artifacts/ui/ (also when a step fails), next to dagster-dev.log, the
server's output; every assertion message names that log.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
DG = Path(sys.executable).parent / "dg"
CHROMIUM = os.environ.get("LORALINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
DOMAIN = "cooking"
ROWS = 40
STAGE_GROUPS = ("foundation", "corpora", "quality", "tokenization", "training", "evaluation", "release")
PER_DOMAIN_ASSETS = ("raw_corpus", "clean_corpus", "training_dataset", "qlora_adapter", "adapter_evaluation", "merged_model")
# The sensor ticks every 30 s: one tick builds base_model, the next launches the domain's chain.
SERVER_TIMEOUT_S = 120
CHAIN_TIMEOUT_S = 240
RUN_TIMEOUT_S = 180
UI_TIMEOUT_MS = 30_000

# Skipped on a developer machine without Chromium; in CI (.ci/run installs it) a missing browser fails.
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file() and not os.environ.get("CI"), reason=f"no Chromium at {CHROMIUM} (set LORALINE_CHROMIUM)"
)


# --- dg dev -------------------------------------------------------------------------------

class DagsterDev:
    """A running `dg dev` and what the test needs to talk to it."""

    def __init__(self, url: str, log: Path, landing: Path, artifacts: Path, home: Path) -> None:
        self.url, self.log, self.landing, self.artifacts, self.home = url, log, landing, artifacts, home

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def why(self, message: str) -> str:
        """An assertion message that says where to look."""
        return f"{message}\n(dg dev log: {self.log}; screenshots: {ARTIFACTS})\nlast log lines:\n{self.log_tail()}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        assert not payload.get("errors"), self.why(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def runs(self) -> list[dict]:
        data = self.graphql("""{ runsOrError(limit: 50) { __typename ... on Runs { results {
            runId jobName status tags { key value } } } } }""")["runsOrError"]
        assert data["__typename"] == "Runs", self.why(f"runsOrError: {data}")
        return [{**run, "tags": {t["key"]: t["value"] for t in run["tags"]}} for run in data["results"]]

    def materializations(self, asset: str, partition: str | None = None, limit: int = 5) -> list[dict]:
        data = self.graphql(
            """query ($path: [String!]!, $partitions: [String!], $limit: Int) {
              assetOrError(assetKey: {path: $path}) { __typename ... on Asset {
                assetMaterializations(partitions: $partitions, limit: $limit) {
                  runId partition timestamp
                  metadataEntries { label ... on FloatMetadataEntry { floatValue } } } } } }""",
            {"path": [asset], "partitions": [partition] if partition else None, "limit": limit},
        )["assetOrError"]
        if data["__typename"] != "Asset":
            return []  # not materialized yet: the asset has no events
        return data["assetMaterializations"]

    def run_status(self, run_id: str) -> str:
        data = self.graphql("query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }", {"id": run_id})
        return data["runOrError"].get("status", data["runOrError"]["__typename"])

    def fail_on_failed_runs(self) -> None:
        failed = [r for r in self.runs() if r["status"] in ("FAILURE", "CANCELED")]
        assert not failed, self.why(f"runs ended badly: {[(r['runId'], r['jobName'], r['status']) for r in failed]}")


def poll(what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 2.0,
         on_timeout: Callable[[str], str] = lambda m: m) -> Any:
    """Call `check` until it returns something truthy; fail after `timeout_s` with `on_timeout`'s message."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(on_timeout(f"timed out after {timeout_s:.0f}s waiting for {what}"))
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group, then SIGKILL to whatever is left after a grace period.

    `dg dev` handles SIGTERM as Ctrl-C and stops its webserver, daemon and code servers (in a
    shell's background job both signals are ignored, hence the process group and the SIGKILL).
    """
    for sig, grace_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            print(f"\n[ui] dg dev still running {grace_s}s after {sig.name}")
            continue
        # The leader is gone; its children (webserver, daemon, code servers, run workers) may not be.
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("ui")
    home, landing, artifacts = root / "dagster_home", root / "landing", root / "artifacts"
    for folder in (home, landing, artifacts):
        folder.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    settings = (home / "dagster.yaml").read_text()
    assert re.search(r"^telemetry:\s*\n\s+enabled:\s*false", settings, re.M), "dagster.yaml must turn telemetry off"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.html"), *ARTIFACTS.glob("*.log")]:
        old.unlink()
    log_path = ARTIFACTS / "dagster-dev.log"
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LORALINE_LANDING_DIR": str(landing),
        "LORALINE_ARTIFACTS_DIR": str(artifacts),
        "LORALINE_REGISTRY_DIR": str(artifacts.parent / "registry"),
        "LORALINE_BASE_MODEL": "builtin:tiny-llama",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        # `dg dev` runs the project ([tool.dg] in pyproject.toml) from the venv named here, as `make ui` does.
        "VIRTUAL_ENV": sys.prefix,
    }
    env.pop("LORALINE_ENV", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(DG), "dev", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = DagsterDev(f"http://127.0.0.1:{port}", log_path, landing, artifacts, home)
    try:
        def answers() -> bool:
            assert process.poll() is None, server.why(f"dg dev exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                    return response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        poll("dg dev to answer HTTP", answers, SERVER_TIMEOUT_S, 1.0, server.why)
        yield server
    finally:
        stop_process_group(process)


# --- Phase A: drop a folder, get a merged model --------------------------------------------------

@pytest.fixture(scope="module")
def landed(dagster_dev: DagsterDev, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Drop the sample `cooking` folder into the landing root and wait for its merged model.

    The folder is prepared beside the landing root with mtimes in the past (so the sensor's settle
    time is already over), then moved in with one rename, as a person would drop a finished folder.
    """
    from pipelines.samples import seed_sample_domains

    scratch = tmp_path_factory.mktemp("seed")
    seed_sample_domains(scratch, rows_per_domain=ROWS)
    folder = scratch / DOMAIN
    past = time.time() - 600
    for path in folder.rglob("*"):
        os.utime(path, (past, past))
    dropped_at = time.monotonic()
    os.rename(folder, dagster_dev.landing / DOMAIN)  # same file system: tmp_path_factory shares one root

    def merged() -> dict | None:
        """The merged_model materialization, once the run that made it has finished."""
        dagster_dev.fail_on_failed_runs()
        found = dagster_dev.materializations("merged_model", DOMAIN, limit=1)
        return found[0] if found and dagster_dev.run_status(found[0]["runId"]) == "SUCCESS" else None

    record = poll(f"a merged_model materialization for partition {DOMAIN!r} from a finished run", merged,
                  CHAIN_TIMEOUT_S, 3.0, dagster_dev.why)
    print(f"\n[ui] dropped folder -> merged model in {time.monotonic() - dropped_at:.0f}s")

    def promoted() -> list[dict]:
        """The registry run promote_after_training launched once the chain succeeded, finished."""
        dagster_dev.fail_on_failed_runs()
        return [r for r in dagster_dev.runs() if r["tags"].get("dagster/sensor_name") == "promote_after_training" and r["status"] == "SUCCESS"]

    poll("the adapter_registry run promote_after_training launches after the chain", promoted, CHAIN_TIMEOUT_S, 3.0, dagster_dev.why)
    return {"merged_model": record, "runs": dagster_dev.runs()}


def test_a_dropped_folder_becomes_a_merged_model_with_no_other_action(dagster_dev: DagsterDev, landed: dict) -> None:
    runs = landed["runs"]
    by_sensor = [r for r in runs if r["tags"].get("dagster/sensor_name") == "landing_zone_sensor"]
    jobs = {r["jobName"] for r in by_sensor}
    assert {"base_model_job", "domain_finetune_job"} <= jobs, dagster_dev.why(f"runs launched by the sensor: {by_sensor}")
    assert all(r["status"] == "SUCCESS" for r in by_sensor), dagster_dev.why(f"sensor runs: {by_sensor}")
    promotions = [r for r in runs if r["tags"].get("dagster/sensor_name") == "promote_after_training"]
    assert [r["jobName"] for r in promotions] == ["registry_job"], dagster_dev.why(f"promotion runs: {promotions}")
    assert {r["runId"] for r in runs} == {r["runId"] for r in by_sensor + promotions}, dagster_dev.why(f"runs not from the sensors: {runs}")
    chain = [r for r in by_sensor if r["jobName"] == "domain_finetune_job"]
    assert [r["tags"].get("dagster/partition") for r in chain] == [DOMAIN], dagster_dev.why(f"domain runs: {chain}")
    assert landed["merged_model"]["runId"] == chain[0]["runId"], dagster_dev.why(f"merged_model: {landed['merged_model']}")
    for asset in PER_DOMAIN_ASSETS:
        assert dagster_dev.materializations(asset, DOMAIN, limit=1), dagster_dev.why(f"{asset} has no {DOMAIN} materialization")
    assert dagster_dev.materializations("adapter_registry", None, limit=1), dagster_dev.why("adapter_registry was not materialized")


# --- Phase B: the browser -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page(dagster_dev: DagsterDev) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 950}, base_url=dagster_dev.url)
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def community_dialog(page: Any) -> Any:
    return page.get_by_role("dialog").filter(has_text="Join the Dagster community")


def open_page(page: Any, dagster_dev: DagsterDev, path: str) -> None:
    """Open a UI page and get the "Join the Dagster community" dialog out of the way.

    Dagster shows the dialog once per instance (it asks the server `shouldShowNux`), a second
    after the app renders. Skipping it tells the server, so later pages never show it.
    """
    page.goto(path)
    page.get_by_role("link", name="Runs").first.wait_for()  # the app shell has rendered
    if dagster_dev.graphql("{ shouldShowNux }")["shouldShowNux"]:
        dialog = community_dialog(page)
        dialog.get_by_role("button", name="Skip", exact=True).click()  # waits for the dialog to appear
        dialog.wait_for(state="hidden")
        poll("the server to record that the community dialog was skipped",
             lambda: not dagster_dev.graphql("{ shouldShowNux }")["shouldShowNux"], 15, 0.5, dagster_dev.why)


def metadata_value(page: Any, label: str) -> Any:
    """The value cell of a metadata entry in a partition's metadata table (key | value)."""
    from playwright.sync_api import expect

    row = page.locator("tr").filter(has=page.get_by_text(label, exact=True))
    expect(row, f"one metadata row {label!r}").to_have_count(1)
    return row.locator("td").nth(1)


@contextmanager
def screenshot_after(page: Any, name: str) -> Iterator[None]:
    """Run a step, then screenshot the page (and keep its HTML), whether the step passed or failed."""
    try:
        yield
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.html").write_text(page.content())


def test_a_person_follows_the_domain_through_the_ui(dagster_dev: DagsterDev, landed: dict, page: Any) -> None:
    from playwright.sync_api import expect

    why = dagster_dev.why

    # 1. The asset graph shows every stage as a group.
    with screenshot_after(page, "01-asset-graph-stage-groups"):
        open_page(page, dagster_dev, "/asset-groups")
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        graph = page.locator("svg foreignObject.group")
        for group in STAGE_GROUPS:
            node = graph.filter(has=page.get_by_text(group, exact=True))
            expect(node, why(f"group {group!r} missing from the asset graph")).to_have_count(1)
            expect(node).to_be_visible()

    # 2. The Runs page lists what the sensor launched, all successful.
    with screenshot_after(page, "02-runs-launched-by-sensor"):
        open_page(page, dagster_dev, "/runs")
        for run in landed["runs"]:
            row = page.locator("[data-index]").filter(has=page.locator(f'a[href="/runs/{run["runId"]}"]'))
            expect(row, why(f"run {run['runId']} not listed")).to_have_count(1)
            expect(row.get_by_text("Success", exact=True)).to_be_visible()
            expect(row.get_by_text(run["tags"]["dagster/sensor_name"]).first).to_be_visible()

    # 3. The domain is a partition of the per-domain assets; its ingest counts are shown.
    with screenshot_after(page, "03-raw-corpus-partition-cooking"):
        open_page(page, dagster_dev, "/assets/raw_corpus?view=partitions")
        expect(page.get_by_text("1 Partitions Selected")).to_be_visible()
        expect(page.get_by_text("Materialized (1)")).to_be_visible()
        partition = page.get_by_title(DOMAIN, exact=True)
        expect(partition, why(f"partition {DOMAIN!r} not listed on raw_corpus")).to_be_visible()
        partition.click()
        expect(page).to_have_url(re.compile(rf"[?&]partition={DOMAIN}(&|$)"))
        expect(page.get_by_text("Latest materialization", exact=True)).to_be_visible()
        for label, value in (("rows_in", ROWS), ("rows_kept", ROWS), ("rows_quarantined", 0)):
            expect(metadata_value(page, label), why(f"raw_corpus {DOMAIN}: {label}")).to_have_text(str(value))

    # 4. Materialize adapter_evaluation for the domain from its asset page: choose the partition...
    with screenshot_after(page, "04-materialize-dialog-partition-chosen"):
        open_page(page, dagster_dev, "/assets/adapter_evaluation")
        page.get_by_role("button", name="Materialize…").first.click()
        dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize adapter_evaluation")
        expect(dialog).to_be_visible()
        dialog.get_by_text("Select a partition or create one").click()
        page.get_by_placeholder("Filter partitions").fill(DOMAIN)
        page.get_by_role("menuitem").filter(has=page.get_by_title(DOMAIN, exact=True)).click()
        dialog.get_by_text("Launch runs to materialize adapter_evaluation").click()  # closes the partition menu
        expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
        expect(dialog.get_by_title(DOMAIN, exact=True).filter(visible=True)).to_have_count(1)  # the chosen chip
    # 5. ...launch it, follow the notice to the run and watch it succeed (unchanged inputs: it re-publishes).
    with screenshot_after(page, "05-launched-run-succeeded"):
        launch = dialog.get_by_role("button", name="Launch 1 run")
        expect(launch).to_be_enabled()
        launch.click()
        toast = page.locator("[data-sonner-toast]").filter(has_text=re.compile(r"Launched run [0-9a-f]{8}"))
        expect(toast, why("no 'Launched run' notice after clicking Launch")).to_be_visible()
        view = toast.get_by_role("link", name="View", exact=True)
        run_id = view.get_attribute("href").rsplit("/", 1)[-1]
        short_id = run_id[:8]
        assert re.fullmatch(r"[0-9a-f-]{36}", run_id) and short_id in toast.inner_text(), why(f"toast {toast.inner_text()!r}, link {run_id}")
        view.click()
        expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))
        poll(f"run {run_id} to finish", lambda: dagster_dev.run_status(run_id) not in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"),
             RUN_TIMEOUT_S, 2.0, why)
        assert dagster_dev.run_status(run_id) == "SUCCESS", why(f"run {run_id} ended {dagster_dev.run_status(run_id)}")
        expect(page.get_by_text("RUN_SUCCESS", exact=True), why(f"run {run_id}: no RUN_SUCCESS event shown")).to_be_visible(timeout=60_000)
        status = page.locator("div").filter(has=page.get_by_role("img", name="run_success")).filter(has_text=re.compile(r"^Success$")).first
        expect(status, why(f"run {run_id}: the page does not show Success")).to_be_visible()
        expect(page.get_by_text(f"partition: {DOMAIN}").first).to_be_visible()

    # 6. The domain's evaluation metadata, from the run just launched.
    latest = dagster_dev.materializations("adapter_evaluation", DOMAIN, limit=1)[0]
    assert latest["runId"] == run_id, why(f"latest adapter_evaluation of {DOMAIN} is from run {latest['runId']}, not {run_id}")
    numbers = {e["label"]: e["floatValue"] for e in latest["metadataEntries"] if "floatValue" in e}
    with screenshot_after(page, "06-adapter-evaluation-metadata"):
        open_page(page, dagster_dev, f"/assets/adapter_evaluation?view=partitions&partition={DOMAIN}")
        expect(page.get_by_text("Latest materialization", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name=short_id, exact=True), why("the partition's latest run is not the one launched")).to_be_visible()
        for label in ("eval_loss_base", "eval_loss_adapter", "perplexity_base", "perplexity_adapter"):
            assert isinstance(numbers.get(label), float), why(f"{label} is not a float entry: {latest['metadataEntries']}")
            # The UI prints floats as JavaScript does: the shortest text that round-trips, as repr().
            expect(metadata_value(page, label), why(f"adapter_evaluation {DOMAIN}: {label}")).to_have_text(repr(numbers[label]))
        assert numbers["eval_loss_adapter"] < numbers["eval_loss_base"], why(f"adapter does not beat base: {numbers}")
