"""
report.html of the `ci_tiny` run in a real browser, headless Chromium (Debian's `chromium` and `chromium-driver`):
the heatmap holds every table cell, every audio player loads its clip at the utterance's length, the console shows
no error, and the page requests nothing outside the run's own files. Without Chromium the test is skipped, except in
CI (`CI=true`), where a missing browser fails it.
"""

import json
import os
import subprocess
import sys

import pytest
import soundfile

from art_asr_ext.benchmark.outputs.plots import wer_colour
from benchmarks.report_screenshot import find_chromium, headless_chromium
from tests.benchmarks.helpers import DATA, REPO, read_csv

#: Loads every <audio> element's metadata, one after the other (a page may hold hundreds), and reports each.
LOAD_AUDIO = """
const done = arguments[arguments.length - 1];
(async () => {
  const found = [];
  for (const audio of document.querySelectorAll("audio")) {
    audio.preload = "metadata";
    if (audio.readyState < 1) {
      await new Promise((resolve) => {
        audio.addEventListener("loadedmetadata", resolve, {once: true});
        audio.addEventListener("error", resolve, {once: true});
        setTimeout(resolve, 10000);
        audio.load();
      });
    }
    found.push({src: audio.currentSrc, readyState: audio.readyState, duration: audio.duration,
                error: audio.error && audio.error.code, utterance: audio.dataset.utterance});
  }
  done(found);
})();
"""


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        reason = "Chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser test.")
        pytest.skip(reason)
    driver = headless_chromium(logs=True)
    driver.set_script_timeout(120)
    yield driver
    driver.quit()


def _utterance_seconds(utterance_id: str, crop_seconds: float) -> float:
    speaker, chapter, _ = utterance_id.split("-")
    path = DATA / "LibriSpeech" / "test-clean" / speaker / chapter / f"{utterance_id}.flac"
    return min(soundfile.info(str(path)).duration, crop_seconds)


def test_report_in_headless_chromium(ci_tiny_run, browser):
    out, result = ci_tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    browser.get((out / "report.html").as_uri())

    # One heatmap cell per cell of table1.csv, in its rows and columns, showing its value.
    table = read_csv(out / "table1.csv")
    columns = (out / "table1.csv").read_text().splitlines()[0].split(",")[1:]
    cells = browser.find_elements("css selector", "#table1 td[data-column]")
    assert len(cells) == len(table) * len(columns)
    shown = {(cell.get_attribute("data-row"), cell.get_attribute("data-column")): cell.text for cell in cells}
    assert shown == {(row["System"], column): row[column] for row in table for column in columns}

    # The target-WER column is painted on its own scale (dark where the attacker succeeded), and its legend shows.
    target = browser.find_elements("css selector", '#table1 td[data-scale="target"]')
    assert target and {cell.get_attribute("data-column") for cell in target} == {"Imperceptible TGT"}
    scored = [cell for cell in target if cell.get_attribute("data-status") == "ok" and cell.text != "n/a"]
    assert scored, "no imperceptible cell scored against its targets"
    for cell in scored:
        painted = cell.value_of_css_property("background-color")  # rgba(r, g, b, 1)
        found = [int(part) for part in painted[painted.index("(") + 1 : -1].split(",")[:3]]
        wanted = [int(part) for part in wer_colour(float(cell.text), target=True)[0][4:-1].split(",")]
        assert max(abs(a - b) for a, b in zip(found, wanted)) <= 2, (cell.text, painted)  # the text is rounded
    legend = browser.find_element("id", "target-legend")
    assert legend.is_displayed() and "low target WER means the attacker succeeded" in legend.text

    # Every player's clip loads, at the utterance's length (ci_tiny crops each to 2 s).
    players = browser.execute_async_script(LOAD_AUDIO)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(players) == sum(
        sum(entry[kind] is not None for kind in ("clean", "adversarial", "defended"))
        for record in records
        for entry in record["report_media"]
    )
    lengths = {uid: _utterance_seconds(uid, 2.0) for uid in {player["utterance"] for player in players}}
    for player in players:
        assert player["error"] is None and player["readyState"] >= 1, player
        assert abs(player["duration"] - lengths[player["utterance"]]) <= 0.1, player

    # No console error, and no request outside the run's own files.
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    messages = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = {m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"}
    assert (out / "report.html").as_uri() in urls and any(url.endswith(".opus") for url in urls)
    own = out.resolve().as_uri() + "/"
    assert [url for url in urls if not (url.startswith(own) or url.startswith("data:"))] == []


def test_screenshot_tool(ci_tiny_run, tmp_path):
    if find_chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium and chromium-driver are not installed; CI must run the browser test.")
        pytest.skip("Chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    out, _ = ci_tiny_run
    shot = tmp_path / "report.png"
    command = [sys.executable, "benchmarks/report_screenshot.py", "--report", str(out / "report.html")]
    result = subprocess.run(command + ["--out", str(shot)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1400, 1000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # a rendered page, not a blank one
    missing = subprocess.run(
        [sys.executable, "benchmarks/report_screenshot.py", "--report", str(tmp_path / "none.html"), "--out", "x.png"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: no report at")
