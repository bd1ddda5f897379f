"""The operator dashboard in a real headless browser against a real devnet.

Debian's chromium and chromium-driver, driven by Selenium through
/usr/bin/chromedriver (never Selenium Manager: nothing is downloaded). The devnet is
``datanet devnet`` as a process (2 organizations, 3 daemon processes); a node of
one organization asks for a dataset of the other that is given out on request, so
the owner has a pending request for its operator to approve in the browser.

Screenshots go to ``tests/browser/artifacts/`` (gitignored); with
``DATANET_UPDATE_SCREENSHOTS=1`` the set is also copied to ``docs/img/dashboard-*.png``
(the ones docs/operators.md shows).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from datanet.client import Client
from datanet.devnet import child_env
from datanet.errors import DatanetError

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DOC_IMAGES = ROOT / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STARTUP = 180.0  # the machine is loaded: a devnet of 3 daemons may take a while
WAIT = 60.0
REQUESTED = "traffic/counts"  # a sample given out on request (samples.toml)
PURPOSE = "research-and-development"

T = TypeVar("T")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Debian's chromium"),
]


def _ensure_browser() -> None:
    """Install chromium and chromium-driver from Debian when missing (as root)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        message = (
            f"{CHROMIUM} or {CHROMEDRIVER} is missing and cannot be installed here "
            "(needs root and apt-get): apt-get install -y chromium chromium-driver"
        )
        if ci:
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"apt-get install chromium chromium-driver failed: {done.stderr[-2000:]}")


def poll(what: str, check: Callable[[], T | None], timeout: float = WAIT) -> T:
    """``check()``'s first truthy answer; DatanetError counts as not yet."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except DatanetError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("dashboard") / "net"
    argv = [sys.executable, "-m", "cli.main", "devnet", "--orgs", "2", "--nodes", "3"]
    proc = subprocess.Popen(
        [*argv, "--dir", str(base), "--json", "--timeout", "120"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], STARTUP)
        assert readable, "the devnet did not become ready in time"
        line = proc.stdout.readline()
        assert line, f"the devnet exited: {proc.communicate(timeout=WAIT)}"
        doc: dict[str, Any] = json.loads(line)
        assert doc["event"] == "ready"
        yield doc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.communicate(timeout=WAIT)


@pytest.fixture(scope="module")
def scene(devnet: dict[str, Any]) -> dict[str, Any]:
    """The owner of a dataset given out on request, and a pending request for it."""
    sample = next(d for d in devnet["datasets"] if d["dataset_id"].endswith("/" + REQUESTED))
    nodes = {n["name"]: n for n in devnet["nodes"]}
    owner = nodes[sample["node"]]
    requester = next(n for n in devnet["nodes"] if n["org"] != owner["org"])
    with Client(requester["data_dir"]) as asker:
        poll("the requester holds the dataset", lambda: asker.resolve(sample["dataset_id"]))
        outcome = asker.request_access(sample["dataset_id"], PURPOSE, days=30, note="dashboard")
        to_deny = asker.request_access(sample["dataset_id"], "public-policy-making", days=7)
    assert outcome.state == "pending", outcome
    assert to_deny.state == "pending", to_deny
    token = (Path(owner["data_dir"]) / "api.token").read_text().strip()
    other_org = next(o["org_id"] for o in devnet["orgs"] if o["name"] == requester["org"])
    return {
        "owner": owner,
        "requester": requester,
        "token": token,
        "dataset": sample,
        "request_id": outcome.request.request_id,
        "deny_id": to_deny.request.request_id,
        "other_org_id": other_org,
        "datasets": devnet["datasets"],
    }


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _ensure_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,860",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports land there
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The browser on one node's dashboard, with waits that poll for conditions."""

    def __init__(self, driver: Any) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.by = By
        self._wait = WebDriverWait
        self.shots: list[Path] = []

    def until(self, what: str, check: Callable[[Any], Any]) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException

        # the views re-render on timers: an element may go stale between find and read
        wait = self._wait(
            self.driver,
            WAIT,
            poll_frequency=0.25,
            ignored_exceptions=[StaleElementReferenceException],
        )
        try:
            return wait.until(check)
        except TimeoutException:
            self.shot(f"failed-{what.replace(' ', '-')}")
            raise AssertionError(f"{what}: not within {WAIT:g} s") from None

    def find(self, css: str) -> Any:
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(self.by.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        found = self.all(css)
        return str(found[0].text) if found else ""

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path


def test_log_in_search_open_a_dataset_and_approve_a_request(
    browser: Any, scene: dict[str, Any]
) -> None:
    page = Page(browser)
    owner, dataset = scene["owner"], scene["dataset"]
    browser.get(owner["api_url"] + "/")  # redirects to /ui/
    page.until("the login form", lambda d: page.find("#view-login").is_displayed())
    assert browser.current_url.endswith("/ui/")

    # a wrong token is refused, with a clear message
    page.find("#token").send_keys("not-the-token-0123456789")
    page.find("#login").click()
    page.until("the refusal", lambda d: "Wrong token" in page.text("#login-error"))
    assert not page.find("#nav").is_displayed()
    page.shot("login-refused")

    # the right token: the node's identity, its peers, routing
    page.find("#token").clear()
    page.find("#token").send_keys(scene["token"])
    page.find("#login").click()
    page.until("the identity", lambda d: page.text('#identity dd[data-field="peer id"]'))
    assert page.text('#identity dd[data-field="peer id"]') == owner["peer_id"]
    assert page.text('#identity dd[data-field="admission"]') == "members"
    # its membership certificate: organization, serial, roles, validity
    assert owner["org"] in page.text('#certificate dd[data-field="organization"]')
    assert "publisher" in page.text('#certificate dd[data-field="roles"]')
    assert page.text('#certificate dd[data-field="valid until"]').endswith("Z")
    page.until("the peers", lambda d: len(page.all("#peers tbody tr")) >= 2)
    page.until("the routing stats", lambda d: page.text("#routing"))
    page.until("the live stream", lambda d: "live" in page.text("#live-state"))

    # search: a word finds the sample; a facet narrows the catalog to one organization
    page.find('nav a[data-view="search"]').click()
    page.until("the newest datasets", lambda d: len(page.all("#hits li")) >= 6)
    page.find("#q").send_keys("traffic")
    page.find("#search").click()
    page.until(
        "the traffic hit",
        lambda d: (
            [h.get_attribute("data-id") for h in page.all("#hits li")] == [dataset["dataset_id"]]
        ),
    )
    page.find("#q").clear()
    page.find("#search").click()
    page.until("every dataset again", lambda d: len(page.all("#hits li")) == 6)
    other = scene["other_org_id"]
    page.find(f'#facets button[data-facet="org"][data-value="{other}"]').click()
    page.until("the facet's hits", lambda d: 0 < len(page.all("#hits li")) < 6)
    hits = [h.get_attribute("data-id") for h in page.all("#hits li")]
    assert all(h.startswith(f"dn://{other}/") for h in hits), hits
    assert "(filtered)" in page.text("#search-summary")
    page.shot("search")
    page.find(f'#facets button[data-facet="org"][data-value="{other}"]').click()  # off again
    page.until("every dataset again", lambda d: len(page.all("#hits li")) == 6)

    # the dataset page: descriptor fields, DCAT, providers
    page.find(f'#hits li[data-id="{dataset["dataset_id"]}"] a').click()
    page.until("the dataset page", lambda d: page.text("#ds-title") == dataset["title"])
    assert page.text("#ds-id") == dataset["dataset_id"]
    assert page.text('#ds-fields dd[data-field="access"]') == "request"
    assert PURPOSE in page.text('#ds-fields dd[data-field="purposes"]')
    assert page.text('#ds-fields dd[data-field="publishing node"]') == owner["peer_id"]
    page.until("the DCAT export", lambda d: "dcat:Dataset" in page.text("#ds-dcat"))
    dcat = json.loads(page.find("#ds-dcat").get_attribute("textContent"))
    assert dcat["@id"] == dataset["dataset_id"]
    assert dcat["dct:title"] == dataset["title"]
    page.until("the providers", lambda d: owner["peer_id"] in page.text("#ds-providers"))
    # the replicas: the k closest peers that hold the newest copy (the other two nodes)
    page.until(
        "the replicas", lambda d: len(page.all('#ds-replicas tr[data-state="current"]')) >= 1
    )
    assert "hold the newest copy" in page.text("#ds-replica-count")
    assert len(page.all("#ds-distributions tbody tr")) == 2
    page.shot("dataset")

    # the pending request: approve it, and the node says it is granted
    page.find('nav a[data-view="requests"]').click()
    row = f'#requests tbody tr[data-id="{scene["request_id"]}"]'
    page.until("the pending request", lambda d: page.all(row))
    assert page.find(row).get_attribute("data-state") == "pending"
    page.shot("requests")
    page.find(f"{row} button.approve").click()
    page.until("the request to leave the pending list", lambda d: not page.all(row))
    assert page.text("#error") == ""
    with Client(owner["data_dir"]) as client:
        assert client.access_request(scene["request_id"]).state == "granted"
    with Client(scene["requester"]["data_dir"]) as asker:
        outcome = asker.refresh_request(scene["request_id"])
    assert outcome.state == "granted"
    assert outcome.grant is not None
    # the other one: deny needs a reason, which the requester gets
    other_row = f'#requests tbody tr[data-id="{scene["deny_id"]}"]'
    page.find(f"{other_row} button.deny").click()
    page.until("the missing reason", lambda d: "reason" in page.text("#error"))
    assert page.find(other_row).get_attribute("data-state") == "pending"
    page.find(f"{other_row} input").send_keys("not for policy work")
    page.find(f"{other_row} button.deny").click()
    page.until("the denied request to leave", lambda d: not page.all(other_row))
    with Client(owner["data_dir"]) as client:
        denied = client.access_request(scene["deny_id"])
    assert denied.state == "denied"
    assert denied.message == "not for policy work"
    page.find("#req-state option[value='granted']").click()
    page.until("the granted request", lambda d: page.all(row))
    assert page.find(row).get_attribute("data-state") == "granted"

    # audit status
    page.find('nav a[data-view="audit"]').click()
    page.until("the audit head", lambda d: page.text('#audit-head dd[data-field="entries"]'))
    assert "No alarm" in page.text("#alarms")
    page.shot("audit")

    # live updates: a dataset withdrawn on the node shows up on the Node view
    withdrawn = next(
        d["dataset_id"]
        for d in scene["datasets"]
        if d["node"] == owner["name"] and d["dataset_id"] != dataset["dataset_id"]
    )
    page.find('nav a[data-view="overview"]').click()
    page.until("the node view", lambda d: page.text('#identity dd[data-field="peer id"]'))
    with Client(owner["data_dir"]) as client:
        client.deprecate(withdrawn, reason="dashboard test")
    page.until("the live withdrawal", lambda d: f"withdrawn {withdrawn}" in page.text("#live"))
    page.shot("node")

    # the page broke no Content-Security-Policy rule and raised no script error
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if "Content Security Policy" in e["message"]], severe
    assert not [e for e in severe if "Uncaught" in e["message"]], severe

    # logging out forgets the token
    page.find("#logout").click()
    page.until("the login form again", lambda d: page.find("#view-login").is_displayed())
    assert browser.execute_script("return sessionStorage.getItem('datanet.token')") is None

    if os.environ.get("DATANET_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(exist_ok=True)
        for shot in page.shots:
            shutil.copyfile(shot, DOC_IMAGES / shot.name)
