"""The page at / in a real browser: headless Chromium (Debian's chromium and chromium-driver),
driven by Selenium, against a server listening on loopback."""

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from helpers import png
from hubel.serve import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMIUM is None or DRIVER is None:
        message = (
            "the page tests need Chromium and its driver: apt-get install chromium chromium-driver (make test does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,900"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


@pytest.fixture()
def serving() -> Iterator:
    """serving(app) -> the base URL of that app, served by uvicorn on a free loopback port."""
    servers = []

    def start(app) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        servers.append((server, thread, listener))
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/"

    yield start
    for server, thread, listener in servers:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def wait_for(driver, condition, seconds: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def test_a_dropped_photo_gets_its_class_and_a_grad_cam(browser, serving, digits_model, tmp_path: Path):
    from selenium.webdriver.common.by import By

    model, x_test, y_test = digits_model
    index = next(i for i in range(len(x_test)) if model.predict(x_test[i : i + 1])[0].argmax() == y_test[i])
    photo = tmp_path / "digit.png"
    photo.write_bytes(png(x_test[index]))
    browser.get(serving(create_app(model)))
    wait_for(browser, lambda page: page.find_element(By.CSS_SELECTOR, '#card [data-field="data"]').text == "digits")
    assert browser.find_element(By.ID, "text-input").is_displayed() is False
    browser.find_element(By.ID, "file").send_keys(str(photo))
    rows = wait_for(browser, lambda page: page.find_elements(By.CSS_SELECTOR, "#predictions .prediction"))
    assert rows[0].get_attribute("data-class") == f"digit {y_test[index]}" and len(rows) == 5
    loaded = "const image = document.getElementById('gradcam'); return !image.hidden && image.naturalWidth"
    assert wait_for(browser, lambda page: page.execute_script(loaded)) == 224
    assert "Grad-CAM for digit" in browser.find_element(By.ID, "gradcam-caption").text


def test_a_typed_text_gets_its_class_and_its_words_weighed(browser, serving, review_model):
    from selenium.webdriver.common.by import By

    browser.get(serving(create_app(review_model)))
    box = wait_for(
        browser,
        lambda page: page.find_element(By.ID, "text") if page.find_element(By.ID, "text").is_displayed() else None,
    )
    box.send_keys("bad bad film, not good")
    browser.find_element(By.ID, "send-text").click()
    rows = wait_for(browser, lambda page: page.find_elements(By.CSS_SELECTOR, "#predictions .prediction"))
    assert [row.get_attribute("data-class") for row in rows] == ["negative", "positive"]
    words = wait_for(browser, lambda page: page.find_elements(By.CSS_SELECTOR, "#words span[title]"))
    weights = {word.text: float(word.get_attribute("title")) for word in words}
    assert weights["good"] < 0 < weights["bad"]  # for the answer, negative: "bad" argued for it, "good" against
    assert not browser.find_element(By.ID, "gradcam").is_displayed()  # no broken image for a text


def test_a_bad_upload_shows_the_servers_message(browser, serving, digits_model, tmp_path: Path):
    from selenium.webdriver.common.by import By

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    browser.get(serving(create_app(digits_model[0])))
    wait_for(browser, lambda page: page.find_element(By.ID, "image-input").is_displayed())
    browser.find_element(By.ID, "file").send_keys(str(broken))
    status = wait_for(browser, lambda page: page.find_element(By.CSS_SELECTOR, "#status.error"))
    assert "not a usable image" in status.text


def test_a_token_is_asked_for_then_used(browser, serving, digits_model):
    from selenium.webdriver.common.by import By

    browser.get(serving(create_app(digits_model[0], token="s3cret")))
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait_for(browser, lambda page: page.find_element(By.ID, "token-box").is_displayed())
    browser.find_element(By.ID, "token").send_keys("s3cret")
    browser.find_element(By.ID, "token-save").click()
    wait_for(browser, lambda page: page.find_element(By.CSS_SELECTOR, '#card [data-field="data"]').text == "digits")
    assert not browser.find_element(By.ID, "token-box").is_displayed()
