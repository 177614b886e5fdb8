"""The page at /ui in a real browser (headless Chromium through chromedriver), with real
traffic: a `python -m http.server` backend, `toxiproxy-server` (or `vaurien --http`) in front
of it, an HTTP client through the proxy. Each state is saved as a screenshot under $VAURIEN_UI_SHOTS (else the
test's tmp_path). Run: bash scripts/test_ui.sh (installs Chromium and Selenium)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from helpers import free_port, toxiproxy_server_bin, vaurien_bin, wait_port
from servers import http_backend  # noqa: F401  (a fixture: `python -m http.server`)

pytestmark = pytest.mark.timeout(180)

CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
LATENCY_MS = 1500


class Api:
    """The control API, as a plain (non-browser) client calls it."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text


@contextlib.contextmanager
def control_api(binary: str, args: list[str], port: int, log: Path) -> Iterator[Api]:
    """`binary ARGS` serving the control API on `port`, its log in a file (a pipe nobody reads
    would stop it once full)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_port(port, proc=proc)
        yield Api(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def toxiproxy_server(log: Path) -> contextlib.AbstractContextManager[Api]:
    """This repository's `toxiproxy-server` on a free port."""
    port = free_port()
    return control_api(toxiproxy_server_bin(), ["-host", "127.0.0.1", "-port", str(port)], port, log)


class World(NamedTuple):
    api: Api
    proxy_port: int
    proxy: str


@pytest.fixture
def world(request: pytest.FixtureRequest, http_backend: int, tmp_path: Path) -> Iterator[World]:
    """One proxy in front of the backend: by default `web`, made through `toxiproxy-server`'s
    API; with the param "vaurien", `vaurien --http`'s own proxy, `vaurien`."""
    proxy_port = free_port()
    upstream = f"127.0.0.1:{http_backend}"
    if getattr(request, "param", "toxiproxy-server") == "vaurien":
        port = free_port()
        args = ["--proxy", f"127.0.0.1:{proxy_port}", "--backend", upstream,
                "--http", "--http-host", "127.0.0.1", "--http-port", str(port)]
        with control_api(vaurien_bin(), args, port, tmp_path / "vaurien.log") as api:
            yield World(api, proxy_port, "vaurien")
        return
    with toxiproxy_server(tmp_path / "toxiproxy-server.log") as api:
        api.call("POST", "/proxies", {"name": "web", "listen": f"127.0.0.1:{proxy_port}", "upstream": upstream})
        yield World(api, proxy_port, "web")


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip(f"no chromedriver at {CHROMEDRIVER} (bash scripts/test_ui.sh installs it)")
    opts = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="vaurien-ui-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1100",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
        # Requests the API refused on purpose are logged too (source "network"): not errors.
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
        assert not errors, f"the page logged errors: {errors}"
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[webdriver.Chrome, str], Path]:
    """Saves a screenshot of the page: `shot(driver, "1-proxy")`."""
    out = Path(os.environ.get("VAURIEN_UI_SHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)

    def shot(driver: webdriver.Chrome, name: str) -> Path:
        path = out / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
        assert path.stat().st_size > 1000
        return path

    return shot


def wait(driver: webdriver.Chrome, what: str, cond: Callable[[webdriver.Chrome], Any], timeout: float = 20) -> Any:
    # The page replaces rows as the API's answers change: an element may go stale under us.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(cond, message=what)


def card(driver: webdriver.Chrome, proxy: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'section.proxy[data-proxy="{proxy}"]')


def fetch(proxy_port: int) -> float:
    """One GET through the proxy (a new connection); how long it took, in seconds."""
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy_port}/hello.txt", timeout=30) as r:
        assert r.read() == b"hello vaurien\n"
    return time.monotonic() - t0


def latency_events(api: Api, proxy: str) -> list[dict[str, Any]]:
    return [e for e in api.call("GET", f"/events?proxy={proxy}") if e["kind"] == "latency"]


@pytest.mark.parametrize("world", ["toxiproxy-server", "vaurien"], indirect=True)
def test_latency_from_the_page(world: World, browser: webdriver.Chrome, shots: Callable) -> None:
    api, proxy_port, name = world
    fetch(proxy_port)
    browser.get(f"{api.base}/ui")

    # The page shows the proxy, its addresses and its traffic.
    wait(browser, "the proxy's card", lambda d: d.find_elements(By.CSS_SELECTOR, f'section.proxy[data-proxy="{name}"]'))
    c = card(browser, name)
    upstream = api.call("GET", f"/proxies/{name}")["upstream"]
    wait(browser, "the addresses", lambda d: f"127.0.0.1:{proxy_port}" in c.find_element(By.CLASS_NAME, "addr").text)
    assert upstream in c.find_element(By.CLASS_NAME, "addr").text
    assert c.find_element(By.CLASS_NAME, "enabled").is_selected()
    assert c.find_element(By.CLASS_NAME, "behavior").text == "dummy"
    wait(browser, "one connection counted", lambda d: c.find_element(By.CLASS_NAME, "stat-conns").text == "1")
    shots(browser, f"{name}-1-proxy")

    # A click adds a latency toxic.
    c.find_element(By.CLASS_NAME, "t-name").send_keys("slow")
    Select(c.find_element(By.CLASS_NAME, "t-type")).select_by_value("latency")
    c.find_element(By.CLASS_NAME, "t-attrs").send_keys(json.dumps({"latency": LATENCY_MS}))
    c.find_element(By.CLASS_NAME, "t-save").click()
    wait(browser, "the toxic listed", lambda d: c.find_elements(By.CSS_SELECTOR, 'tr[data-toxic="slow"]'))
    toxics = api.call("GET", f"/proxies/{name}/toxics")
    assert [(t["name"], t["type"], t["attributes"]["latency"]) for t in toxics] == [("slow", "latency", LATENCY_MS)]
    row = c.find_element(By.CSS_SELECTOR, 'tr[data-toxic="slow"]')
    assert f"latency={LATENCY_MS}" in row.text

    # A client through the proxy meets the delay (a lower bound only).
    took = [fetch(proxy_port) for _ in range(2)]
    assert all(t >= LATENCY_MS / 1000 for t in took), took
    shots(browser, f"{name}-2-latency")

    # The event list shows the faults the client met, as the API lists them.
    met = {str(e["connection"]) for e in latency_events(api, name)}
    assert len(met) >= 2, met

    def shown(d: webdriver.Chrome) -> set[str]:
        rows = d.find_elements(By.CSS_SELECTOR, f'#events tbody tr[data-kind="latency"][data-proxy="{name}"]')
        return {r.get_attribute("data-connection") for r in rows}

    wait(browser, f"events of connections {met}", lambda d: met <= shown(d))
    first = browser.find_element(By.CSS_SELECTOR, '#events tbody tr[data-kind="latency"]')
    assert "slow" in first.text and name in first.text
    shots(browser, f"{name}-3-events")

    # Removing the toxic from the page restores the speed: no more delay, no more events.
    row.find_element(By.CLASS_NAME, "toxic-remove").click()
    wait(browser, "the toxic gone", lambda d: not c.find_elements(By.CSS_SELECTOR, 'tr[data-toxic="slow"]'))
    assert api.call("GET", f"/proxies/{name}/toxics") == []
    before = len(latency_events(api, name))
    took = [fetch(proxy_port) for _ in range(2)]
    assert all(t < LATENCY_MS / 1000 for t in took), took
    assert len(latency_events(api, name)) == before
    shots(browser, f"{name}-4-removed")


def test_every_api_action_from_the_page(world: World, browser: webdriver.Chrome, shots: Callable) -> None:
    api, proxy_port, _ = world
    browser.get(f"{api.base}/ui")
    wait(browser, "the proxy's card", lambda d: d.find_elements(By.CSS_SELECTOR, 'section.proxy[data-proxy="web"]'))
    c = card(browser, "web")

    # Disable, then enable the proxy.
    c.find_element(By.CLASS_NAME, "enabled").click()
    wait(browser, "disabled", lambda d: api.call("GET", "/proxies/web")["enabled"] is False)
    with pytest.raises(OSError):
        fetch(proxy_port)
    c.find_element(By.CLASS_NAME, "enabled").click()
    wait(browser, "enabled", lambda d: api.call("GET", "/proxies/web")["enabled"] is True)
    fetch(proxy_port)

    # A behavior mix, with options.
    c.find_element(By.CLASS_NAME, "behavior-input").send_keys("50:delay,10:error")
    c.find_element(By.CLASS_NAME, "behavior-options").send_keys('{"sleep": 0.1}')
    c.find_element(By.CLASS_NAME, "behavior-set").click()
    wait(browser, "the mix set", lambda d: api.call("GET", "/behavior?proxy=web")["behavior"] == "50:delay,10:error")
    wait(browser, "the mix shown", lambda d: c.find_element(By.CLASS_NAME, "behavior").text == "50:delay,10:error")

    # A toxic added, edited (the form is filled from the row), and an error said in one line.
    c.find_element(By.CLASS_NAME, "t-name").send_keys("thin")
    Select(c.find_element(By.CLASS_NAME, "t-type")).select_by_value("bandwidth")
    c.find_element(By.CLASS_NAME, "t-attrs").send_keys('{"rate": 100}')
    c.find_element(By.CLASS_NAME, "t-save").click()
    wait(browser, "the toxic listed", lambda d: c.find_elements(By.CSS_SELECTOR, 'tr[data-toxic="thin"]'))
    c.find_element(By.CSS_SELECTOR, 'tr[data-toxic="thin"] .toxic-edit').click()
    attrs = c.find_element(By.CLASS_NAME, "t-attrs")
    assert json.loads(attrs.get_attribute("value")) == {"rate": 100}
    attrs.clear()
    attrs.send_keys('{"rate": 250}')
    c.find_element(By.CLASS_NAME, "t-save").click()
    wait(browser, "the toxic updated", lambda d: api.call("GET", "/proxies/web/toxics/thin")["attributes"]["rate"] == 250)
    wait(browser, "the update shown", lambda d: "rate=250" in c.find_element(By.CSS_SELECTOR, 'tr[data-toxic="thin"]').text)
    attrs.clear()
    attrs.send_keys('{"rate": -1}')
    c.find_element(By.CLASS_NAME, "t-save").click()
    wait(browser, "the API's error shown", lambda d: "400" in d.find_element(By.ID, "status").text)

    # A second proxy from the header's form, then reset everything.
    form = browser.find_element(By.ID, "new-proxy")
    form.find_element(By.NAME, "name").send_keys("other")
    form.find_element(By.NAME, "listen").send_keys("127.0.0.1:0")
    form.find_element(By.NAME, "upstream").send_keys(api.call("GET", "/proxies/web")["upstream"])
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, "the new proxy's card", lambda d: d.find_elements(By.CSS_SELECTOR, 'section.proxy[data-proxy="other"]'))
    c.find_element(By.CLASS_NAME, "enabled").click()
    wait(browser, "disabled", lambda d: api.call("GET", "/proxies/web")["enabled"] is False)
    shots(browser, "5-before-reset")
    browser.find_element(By.ID, "reset").click()
    wait(browser, "reset", lambda d: api.call("GET", "/proxies/web")["enabled"] is True and not api.call("GET", "/proxies/web")["toxics"])
    wait(browser, "no toxic shown", lambda d: not c.find_elements(By.CSS_SELECTOR, "tr[data-toxic]"))

    # Delete the second proxy.
    card(browser, "other").find_element(By.CLASS_NAME, "delete").click()
    wait(browser, "the card gone", lambda d: not d.find_elements(By.CSS_SELECTOR, 'section.proxy[data-proxy="other"]'))
    assert set(api.call("GET", "/proxies")) == {"web"}


def test_many_proxies_and_a_flood_of_events(
    http_backend: int, browser: webdriver.Chrome, shots: Callable, tmp_path: Path
) -> None:
    """200 proxies and hundreds of events: every card is shown, the event list stays capped
    and the page still answers."""
    with toxiproxy_server(tmp_path / "toxiproxy-server.log") as api:
        proxies = [
            {"name": f"p{i:03}", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{http_backend}",
             "toxics": [{"name": "lag", "type": "latency", "attributes": {"latency": 1}}]}
            for i in range(200)
        ]
        api.call("POST", "/populate", proxies)
        browser.get(f"{api.base}/ui")
        wait(browser, "200 cards", lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.proxy")) == 200, timeout=60)
        port = int(api.call("GET", "/proxies/p000")["listen"].rsplit(":", 1)[1])
        for _ in range(300):
            fetch(port)
        wait(browser, "events shown", lambda d: int(d.find_element(By.ID, "event-count").text) >= 300, timeout=60)
        rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
        assert 0 < len(rows) <= 200
        assert browser.execute_script("return document.querySelectorAll('section.proxy').length") == 200
        shots(browser, "6-many")
