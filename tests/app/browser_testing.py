"""Headless Chromium through selenium, with the flags that work in containers and keep it offline."""

import shutil
import tempfile

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1500",
)  # fmt: skip


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths of Debian's chromium and chromium-driver, or None."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_chromium(browser: str, driver: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='mist-chromium-')}")
    return webdriver.Chrome(service=Service(driver), options=options)


def ask_in_browser(driver, url: str, video: str, question: str, choices: str = "", timeout: float = 90) -> dict:
    """Load the page, upload `video`, ask, and read what the page shows once the picture is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    upload = wait.until(lambda page: page.find_element(By.CSS_SELECTOR, "#video input[type=file]"))
    upload.send_keys(video)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#video video"))
    driver.find_element(By.CSS_SELECTOR, "#question textarea").send_keys(question)
    if choices:
        driver.find_element(By.CSS_SELECTOR, "#choices textarea").send_keys(choices)
    driver.find_element(By.CSS_SELECTOR, "#ask").click()
    loaded = (
        "const i = arguments[0]; return i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null"
    )
    picture = wait.until(
        lambda page: [
            size
            for image in page.find_elements(By.CSS_SELECTOR, "#explanation img")
            if (size := page.execute_script(loaded, image))
        ]
    )[0]
    return {
        "answers": driver.find_element(By.CSS_SELECTOR, "#answers").text,
        "kept": driver.find_element(By.CSS_SELECTOR, "#kept-segments").text,
        "picture_size": picture,
    }
