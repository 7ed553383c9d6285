"""The app in a real browser: headless Chromium loads the page, uploads a generated mp4, asks, reads the answer
and checks the explanation picture is shown."""

import pytest
from PIL import Image

from tests.app.browser_testing import ask_in_browser, find_chromium, start_chromium

QUESTION = "what did the person hold?"

chromium = find_chromium()
pytestmark = [
    pytest.mark.skipif(
        chromium is None,
        reason="chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver; .ci/run does this)",
    ),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),  # pandas deprecations inside gradio
]


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(*chromium)
    yield driver
    driver.quit()


def test_upload_ask_and_see_the_answers_and_the_picture(browser, served_app, answerer, app_video, tmp_path):
    expected = answerer.pipeline(str(app_video), QUESTION, top_k=5)
    shown = ask_in_browser(browser, served_app.local_url, str(app_video), QUESTION)
    lines = shown["answers"].splitlines()
    assert lines[0] == "answers" and lines[1] == expected[0]["answer"]  # the label's headline: the best answer
    for item in expected:  # every ranked answer with its percentage, best first
        assert item["answer"] in lines and f"{round(100 * item['score'])}%" in shown["answers"]
    assert [line for line in lines[2:] if line in {a["answer"] for a in expected}] == [a["answer"] for a in expected]
    width, height = shown["picture_size"]
    assert width >= 900 and height >= 600
    assert shown["kept"].startswith("ISTA layer 1 kept segment") and "ISTA layer 2 kept segment" in shown["kept"]
    assert "s, score" in shown["kept"]  # times in seconds: the video's frame rate is known
    browser.save_screenshot(str(tmp_path / "app.png"))
    assert Image.open(tmp_path / "app.png").size[0] >= 1200


def test_choices_typed_one_per_line(browser, served_app, app_video):
    shown = ask_in_browser(browser, served_app.local_url, str(app_video), QUESTION, choices="a red cup\nthe blue box")
    lines = shown["answers"].splitlines()
    assert lines[1] in {"a red cup", "the blue box"}
    assert {"a red cup", "the blue box"} <= set(lines)
