"""The connect page in headless Chromium: connect form, the emulator's approval page, callback, connected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from routiine_pipeline.control.store import CONNECTED

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "Debian's chromium and chromium-driver are missing: run `make browser` (apt-get install)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    # These flags keep Chromium off every network but loopback.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=str(CHROMEDRIVER)), options=options
    )
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_connect_in_browser(connect_page, browser, tmp_path):
    wait = WebDriverWait(browser, 20)
    browser.get(connect_page.url + "/")
    assert "No tenants yet" in browser.find_element(By.TAG_NAME, "body").text

    browser.find_element(By.NAME, "tenant_id").send_keys("acme")
    browser.find_element(
        By.CSS_SELECTOR, "input[name=org_type][value=production]"
    ).click()
    browser.find_element(By.NAME, "login_url").send_keys(connect_page.emulator.url)
    browser.find_element(By.ID, "connect").click()

    wait.until(expected_conditions.title_is("Allow Access"))
    assert browser.current_url.startswith(
        connect_page.emulator.url + "/services/oauth2/authorize?"
    )
    browser.find_element(By.CSS_SELECTOR, "button[value=allow]").click()

    wait.until(expected_conditions.presence_of_element_located((By.ID, "notice")))
    browser.save_screenshot(str(tmp_path / "connected.png"))
    assert (tmp_path / "connected.png").stat().st_size > 0
    assert browser.current_url.startswith(connect_page.url + "/?notice=")
    assert browser.find_element(By.ID, "notice").text == "Tenant acme is connected."
    row = browser.find_element(By.ID, "tenant-acme").text
    assert "acme" in row
    assert "connected" in row
    assert "Production" in row
    assert connect_page.context.store.get_tenant("acme").status == CONNECTED

    access = connect_page.context.connector.vault.decrypt(
        _token_row(connect_page)["access_ciphertext"],
        tenant="acme",
        kind="access_token",
    )
    assert access not in browser.page_source


def _token_row(connect_page):
    import sqlalchemy as sa

    from routiine_pipeline.control import tables

    with connect_page.context.store.engine.connect() as conn:
        return conn.execute(sa.select(tables.tokens)).mappings().first()
