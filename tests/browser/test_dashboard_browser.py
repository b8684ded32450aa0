"""The dashboard in Debian's headless Chromium against a real gunicorn sidecar.

Needs ``apt-get install chromium chromium-driver`` and selenium from PyPI; skipped with the
reason when either is missing (never downloads a browser). Screenshots of every page go to
``.data/screenshots/``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import requests
from conftest import FS_AUTH, ROOT, TEST_PBX, SidecarProcess, call_body, start_sidecar
from psycopg.rows import dict_row

from sidecar.auth import hash_password
from sidecar.repo import users as users_repo
from sidecar.simulator.cdr_template import build_cdr

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed"
        " (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402

SHOTS = ROOT / ".data" / "screenshots"
PASSWORD = "correct horse battery staple"
WAIT = 15.0
T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the element may not exist yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last})")


@pytest.fixture(scope="module")
def sidecar(db_url: str, redis_url: str) -> Iterator[SidecarProcess]:
    (ROOT / ".data").mkdir(exist_ok=True)
    config = Path(__file__).with_name("gunicorn_dashboard.py")
    process = start_sidecar(
        db_url,
        redis_url,
        workers=2,
        GUNICORN_CMD_ARGS=f"--config {config}",
        APOLO_SESSION_COOKIE_SECURE="false",
        APOLO_DASHBOARD_STREAM_SECONDS="20",
        APOLO_DASHBOARD_HEARTBEAT_SECONDS="2",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def downloads() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="apolo-downloads-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="apolo-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1366,900",
    ):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports land there
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_csp_violation(browser: Any) -> Iterator[None]:
    """The dashboard runs under a strict Content-Security-Policy (no inline script or style,
    never framed): whatever a test did, the browser refused nothing of the page."""
    browser.get_log("browser")  # what earlier tests left
    yield
    refused = [
        e["message"]
        for e in browser.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]
    assert refused == []  # fmt: skip


def shoot(driver: Any, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, max(900, min(int(height) + 120, 3000)))
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    driver.set_window_size(1366, 900)


def make_user(db_url: str, username: str, role: str) -> None:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        c.execute("TRUNCATE users, user_sessions, login_failures CASCADE")
        users_repo.create(c, username, role, hash_password(PASSWORD))
        c.commit()


def log_in(driver: Any, sidecar: SidecarProcess, username: str, path: str = "/dashboard/") -> None:
    driver.delete_all_cookies()
    driver.get(sidecar.url + path)
    wait_for(lambda: driver.find_element(By.ID, "login-form"), "the login form")
    assert "/dashboard/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait_for(lambda: driver.find_element(By.ID, "logout"), "the logged-in page")
    assert driver.current_url == sidecar.url + path


def authorize(sidecar: SidecarProcess, number: str) -> tuple[str, int]:
    """(call uuid, max_duration) of a newly authorized call."""
    call = str(uuid.uuid4())
    resp = requests.post(
        sidecar.url + "/v1/authorize",
        json=call_body(call, number),
        auth=FS_AUTH,
        timeout=10,
    )
    assert resp.status_code == 200 and resp.json()["authorized"], resp.text
    return call, int(resp.json()["max_duration"])


def hang_up(sidecar: SidecarProcess, call: str, number: str, talk_seconds: int) -> None:
    answered = time.time() - talk_seconds - 1
    cdr = build_cdr(
        call, number, "51987654321", int(answered * 1e6), talk_seconds * 1_000_000, TEST_PBX
    )
    resp = requests.post(
        f"{sidecar.url}/freeswitch/cdr?uuid={call}",
        data=cdr,
        headers={"Content-Type": "text/xml"},
        auth=FS_AUTH,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text


def test_login_recharge_and_see_the_ledger_row(browser, sidecar, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10")
    make_user(db_url, "ada", "admin")
    browser.delete_all_cookies()
    browser.get(sidecar.url + "/dashboard/accounts/100001")
    wait_for(lambda: browser.find_element(By.ID, "login-form"), "the login form")
    shoot(browser, "01-login")
    log_in(browser, sidecar, "ada", "/dashboard/accounts/100001")
    assert browser.find_element(By.ID, "balance").text == "10.00 USD"
    browser.find_element(By.ID, "amount").send_keys("7.5")
    browser.find_element(By.ID, "note").send_keys("paid at the front desk")
    browser.find_element(By.ID, "recharge-submit").click()
    done = wait_for(lambda: browser.find_element(By.ID, "recharge-done"), "the recharge message")
    assert done.text == "Recharge applied."
    assert browser.find_element(By.ID, "balance").text == "17.50 USD"
    first = browser.find_elements(By.CSS_SELECTOR, "#ledger tbody tr")[0]
    cells = [td.text for td in first.find_elements(By.TAG_NAME, "td")]
    assert cells[1:] == ["recharge", "7.50", "17.50", "user:ada", "paid at the front desk"]
    shoot(browser, "04-account")
    with psycopg.connect(db_url) as c:
        rows = c.execute("SELECT amount, actor FROM ledger WHERE kind = 'recharge'").fetchall()
    assert [(str(a), actor) for a, actor in rows] == [("7.5000", "user:ada")]
    # reloading the result page does not post again
    browser.refresh()
    assert browser.find_element(By.ID, "balance").text == "17.50 USD"
    browser.get(sidecar.url + "/dashboard/accounts")
    assert "100001" in browser.find_element(By.ID, "accounts").text
    shoot(browser, "03-accounts")
    browser.get(sidecar.url + "/dashboard/audit")
    audit = browser.find_element(By.ID, "audit").text
    assert "account.recharge" in audit and "user.login" in audit
    shoot(browser, "08-audit")


def test_import_a_rate_file_with_progress_and_errors(
    browser, sidecar, seed, db_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    make_user(db_url, "ada", "admin")
    log_in(browser, sidecar, "ada", "/dashboard/rates")
    assert browser.find_element(By.ID, "plans-empty").is_displayed()
    good = tmp_path / "rates.csv"
    lines = ["prefix,name,rate_per_minute,connection_fee"]
    lines += [f"51{n:04d},Peru {n},0.{n % 90 + 10:02d},0" for n in range(2000)]
    good.write_text("\n".join(lines) + "\n")
    browser.find_element(By.ID, "import-plan").send_keys("browser-plan")
    browser.find_element(By.ID, "import-file").send_keys(str(good))
    browser.find_element(By.ID, "import-submit").click()
    done = wait_for(lambda: browser.find_element(By.ID, "import-done"), "the import result")
    assert done.text == "Imported 2,000 rate(s) into browser-plan."
    assert "browser-plan" in browser.find_element(By.ID, "plans").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rates tbody tr")) == 100
    shoot(browser, "05-rates")
    bad = tmp_path / "bad.csv"
    bad.write_text("prefix,rate_per_minute\n52,0.5\n52x,0.5\n53,-1\n")
    browser.find_element(By.ID, "import-plan").clear()
    browser.find_element(By.ID, "import-plan").send_keys("other-plan")
    browser.find_element(By.ID, "import-file").send_keys(str(bad))
    browser.find_element(By.ID, "import-submit").click()
    wait_for(lambda: browser.find_element(By.ID, "import-failed"), "the import errors")
    rows = browser.find_elements(By.CSS_SELECTOR, "#import-errors tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["3", "4"]
    shoot(browser, "05-rates-errors")
    with psycopg.connect(db_url) as c:
        plans = [r[0] for r in c.execute("SELECT name FROM rate_plans ORDER BY name")]
        count = c.execute("SELECT count(*) FROM rates").fetchone()
    assert plans == ["browser-plan"] and count == (2000,)


def test_live_call_appears_ticks_and_disappears(browser, sidecar, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10")
    make_user(db_url, "nora", "operator")
    log_in(browser, sidecar, "nora", "/dashboard/calls")
    wait_for(lambda: "Live" in browser.find_element(By.ID, "live-status").text, "the live feed")
    assert browser.find_element(By.ID, "live-empty").is_displayed()
    call, max_duration = authorize(sidecar, "100001")
    selector = f'#live-calls tr[data-uuid="{call}"]'
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, selector), "the call's row")
    assert not browser.find_element(By.ID, "live-empty").is_displayed()
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["100001", "100001", "51987654321"] and cells[6] == "authorized"
    first = row.find_element(By.CSS_SELECTOR, ".duration").text
    wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, selector + " .duration").text != first,
        "the duration to tick",
    )
    remaining = browser.find_element(By.CSS_SELECTOR, selector + " .remaining").text
    hours, minutes, seconds = (int(p) for p in remaining.split(":"))
    assert hours * 3600 + minutes * 60 + seconds == max_duration > 0
    assert browser.find_element(By.ID, "live-count").text == "(1)"
    shoot(browser, "02-active-calls")
    hang_up(sidecar, call, "100001", 5)
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, selector), "the row to go")
    assert browser.find_element(By.ID, "live-empty").is_displayed()
    assert browser.find_element(By.ID, "live-count").text == "(0)"


def test_overview_and_cdr_export(browser, sidecar, seed, db_url, downloads) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10")
    make_user(db_url, "vic", "viewer")
    calls = []
    for n in range(3):  # one at a time: a call reserves all the balance it can use
        call = authorize(sidecar, "100001")[0]
        hang_up(sidecar, call, "100001", 30 * (n + 1))
        calls.append(call)
    log_in(browser, sidecar, "vic")
    assert browser.find_element(By.ID, "stat-calls").text == "3"
    assert browser.find_element(By.ID, "stat-minutes").text == "3.00"
    shoot(browser, "00-overview")
    browser.get(sidecar.url + "/dashboard/cdrs?account=100001")
    rows = browser.find_elements(By.CSS_SELECTOR, "#cdrs tbody tr")
    assert len(rows) == 3
    shoot(browser, "06-cdrs")
    for old in downloads.iterdir():
        old.unlink()
    browser.find_element(By.ID, "cdr-export").click()
    exported = wait_for(
        lambda: [p for p in downloads.iterdir() if p.suffix == ".csv"], "the CSV download"
    )
    text = exported[0].read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,call_uuid,leg")
    assert sorted(line.split(",")[1] for line in lines[1:]) == sorted(calls)
    # a viewer has no recharge form and the server refuses the post anyway
    browser.get(sidecar.url + "/dashboard/accounts/100001")
    assert not browser.find_elements(By.ID, "recharge-form")
    shoot(browser, "07-account-viewer")
