"""The dashboard in a real browser: Debian's Chromium through chromedriver (installed by
`make test-deps`), headless, against one running platform (`gamemetrics up`) for the module.

Every page a test opens is saved as a PNG under test-output/screenshots (or
$GAMEMETRICS_TEST_OUTPUT/screenshots), so a run leaves a picture of each page it saw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import (
    RunningPlatform,
    _create_tenancy,
    _stop_cleanly,
    interrupted_on_failure,
    start_platform,
    wait_ready,
)

PASSWORD = "correct horse battery staple"
OUTPUT = Path(os.environ.get("GAMEMETRICS_TEST_OUTPUT", Path(__file__).parents[2] / "test-output")) / "screenshots"
WAIT_S = 30.0


@dataclass
class Operators:
    """Operators of the platform under test: tenant A's admin and analyst, tenant B's admin and game."""

    admin: str
    analyst: str
    other_admin: str
    other_game: str
    platform_admin: str


def _browser_missing() -> str | None:
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make test-deps installs it)"
    return None


def create_operator(platform: RunningPlatform, email: str, role: str, tenant: str | None) -> None:
    # Four of these run at once; on a busy machine each may take a minute.
    done = subprocess.run(
        [sys.executable, "-m", "gamemetrics.cli", "admin", "create-operator", "--email", email, "--role", role,
         *(["--tenant", tenant] if tenant else []), "--password-stdin"],
        env=platform.env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def platform() -> Iterator[RunningPlatform]:
    missing = _browser_missing()
    if missing:
        pytest.fail(missing)
    # Ingest's refusal counts reach the data-quality page within half a second.
    running = start_platform("gamemetrics-browser-", settings={"GAMEMETRICS_REFUSAL_FLUSH_SECONDS": "0.5"})
    with interrupted_on_failure(running):
        wait_ready(running)
        _create_tenancy(running)
    yield running
    _stop_cleanly(running)
    shutil.rmtree(running.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def operators(platform: RunningPlatform) -> Operators:
    tag = uuid.uuid4().hex[:8]
    other_tenant = platform.cli("admin", "create-tenant", "Other Studio")["tenant_id"]
    other_game = platform.cli("admin", "create-game", "--tenant", other_tenant, "Other Game")["game_id"]
    found = Operators(f"admin-{tag}@studio.test", f"analyst-{tag}@studio.test", f"other-{tag}@other.test",
                      other_game, f"root-{tag}@platform.test")
    wanted = [(found.admin, "tenant_admin", platform.tenant_id), (found.analyst, "analyst", platform.tenant_id),
              (found.other_admin, "tenant_admin", other_tenant), (found.platform_admin, "platform_admin", None)]
    with ThreadPoolExecutor(len(wanted)) as pool:
        list(pool.map(lambda w: create_operator(platform, *w), wanted))
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1440,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=ChromeService(shutil.which("chromedriver")))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


class Dashboard:
    """The browser on the platform's dashboard: log in and out, open pages, save screenshots."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str, shot: str | None = None) -> None:
        self.driver.get(self.base_url + path)
        if shot:
            self.shot(shot)

    def shot(self, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def log_in(self, email: str, password: str = PASSWORD, tenant: str | None = None) -> None:
        self.driver.delete_all_cookies()
        self.open("/dashboard/login")
        self.driver.find_element(By.ID, "email").send_keys(email)
        self.driver.find_element(By.ID, "password").send_keys(password)
        if tenant:
            self.driver.find_element(By.ID, "tenant_id").send_keys(tenant)
        submit = self.driver.find_element(By.ID, "submit")
        submit.click()
        WebDriverWait(self.driver, WAIT_S).until(lambda _: _gone(submit), message="the login form's answer")

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def wait(self, check: Callable[[WebDriver], object], what: str) -> None:
        """Wait until `check` holds. A check that reads an element of the page an action is leaving
        (a form's answer still on its way) is asked again on the next page rather than failing."""
        WebDriverWait(self.driver, WAIT_S, poll_frequency=0.2,
                      ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            check, message=f"waited for {what}")


def _gone(element: WebElement) -> bool:
    """Whether the page holding `element` has been left. Chromium, asked about an element while the
    next page replaces its document, answers either "stale element" or an inspector error saying
    the node no longer belongs to the document; both mean the same."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error.msg):
            return True
        raise
    return False


@pytest.fixture
def dashboard(browser: webdriver.Chrome, platform: RunningPlatform) -> Dashboard:
    return Dashboard(browser, platform.base_url)


def operator_token(platform: RunningPlatform, email: str) -> str:
    """An access token for the operator, from the users API the dashboard itself logs in through."""
    answer = httpx.post(f"{platform.base_url}/v1/operators/login", json={"email": email, "password": PASSWORD},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])
