"""A real headless chromium for the operator's page, driven by selenium through Debian's
chromium-driver (``.ci/run`` installs both with apt-get). Missing, a test skips with the reason;
under CI=true that skip is a failure, like a missing network namespace."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
         "--window-size=1280,1000")


def need_chromium() -> None:
    if shutil.which(CHROMIUM) and shutil.which(DRIVER):
        return
    why = f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {DRIVER})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; under CI=true this test must run")
    pytest.skip(why)


@contextlib.contextmanager
def chromium(trust_self_signed: bool = False):
    """A browser session; closed afterwards, whatever happens."""
    need_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    if trust_self_signed:  # the page's own `cellctl certs generate` certificate, as a technician accepts it once
        options.accept_insecure_certs = True
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, what, timeout: float = 30.0, message: str = ""):
    """``what(driver)`` once it is truthy; fails with ``message`` and the page's text otherwise."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(what)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text[:2000]
        raise AssertionError(f"{message or what} not seen within {timeout}s; the page says:\n{body}") from None
