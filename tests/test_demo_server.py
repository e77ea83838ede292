"""The demo as its users meet it: `faster-rcnn-hub demo` serving a converted model on 127.0.0.1, driven in
Debian's Chromium through Playwright, and called over Gradio's API with gradio_client.

The server starts once for this module. Every check compares what the page or the API shows with what the
Python API (`Detector`) returns for the same image and threshold.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from test_demo_video import write_clip

from faster_rcnn_hub.data.synthetic import SHAPE_CLASSES, generate_image
from faster_rcnn_hub.default_model import default_model_dir
from faster_rcnn_hub.demo.analysis import TABLE_HEADERS, annotate_for_display, display_scale
from faster_rcnn_hub.demo.interface import API_NAME, ERROR_PREFIX, example_paths
from faster_rcnn_hub.demo.models import DEFAULT_MODEL_NAME, PHOTO_KIND, SHAPES_KIND
from faster_rcnn_hub.detection import Detector
from faster_rcnn_hub.models.faster_rcnn.image_io import load_image

TINY = "tiny_r50_fpn_coco"
# Importing torch, transformers and gradio on two busy cores can take a minute; the server gets five.
STARTUP_TIMEOUT_S = 300
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A fake camera (a test pattern) that the page may use without asking: for the webcam tab.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
FILE_INPUT = "#input-image input[type=file]"


def find_chromium() -> str | None:
    """Debian's Chromium (or the one `FASTER_RCNN_HUB_CHROMIUM` names), if this machine has it."""
    candidates = [os.environ.get("FASTER_RCNN_HUB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def table_rows(detections) -> list[list]:
    """The rows the page's table should hold: scores to 3 decimals, corners to 0.1 px."""
    return [[d.label, round(d.score, 3), *(round(value, 1) for value in d.box)] for d in detections]


@pytest.fixture(scope="module")
def model_dir(converted_model) -> Path:
    return converted_model(TINY)


@pytest.fixture(scope="module")
def detector(model_dir) -> Detector:
    return Detector(model_dir, device="cpu")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Where screenshots go: $FASTER_RCNN_HUB_TEST_ARTIFACTS, else pytest's temporary folder (never the repo)."""
    folder = os.environ.get("FASTER_RCNN_HUB_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("demo-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def demo_url(demo_server) -> str:
    return demo_server[0]


@pytest.fixture(scope="module")
def demo_server(model_dir, tmp_path_factory):
    """Start `faster-rcnn-hub demo --model <tiny model> --host 127.0.0.1 --port <free>`; yield its URL and
    process; stop it afterwards."""
    folder = tmp_path_factory.mktemp("demo-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(folder / "gradio-cache"),
    }
    command = [str(Path(sys.executable).with_name("faster-rcnn-hub")), "demo", "--model", str(model_dir),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"faster-rcnn-hub demo exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"faster-rcnn-hub demo did not answer in {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def page(demo_url, tmp_path_factory):
    """A Chromium page (fresh profile) showing the demo."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium not found (looked at $FASTER_RCNN_HUB_CHROMIUM, /usr/bin/chromium and PATH): "
            "apt-get install chromium, or run scripts/install-chromium.sh as root"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1100},
            accept_downloads=True,
        )
        try:
            page = context.new_page()
            page.set_default_timeout(120_000)  # a model run on two busy cores can take tens of seconds
            page.goto(demo_url, wait_until="domcontentloaded")
            page.locator(FILE_INPUT).wait_for(state="attached")
            yield page
        finally:
            context.close()


def set_threshold(page, value: float, slider: str = "threshold") -> None:
    box = page.locator(f"#{slider} input[type=number]")
    box.fill(f"{value}")
    box.press("Enter")


def shown_table(page) -> list[list]:
    """The table as the page renders it, numbers parsed."""
    rows = []
    for row in page.locator("#detections-table .virtual-row").all():
        label, *numbers = (cell.inner_text().strip() for cell in row.locator("[role=gridcell]").all())
        rows.append([label, *(float(number) for number in numbers)])
    return rows


def downloaded_report(page) -> dict:
    with page.expect_download() as download:
        page.locator("#json-report a").first.click()
    return json.loads(Path(download.value.path()).read_text())


def test_browser_upload_shows_the_models_detections(page, detector, artifacts):
    image_path = IMAGES / "astronaut.png"
    threshold = 0.6
    expected = detector(image_path, threshold=threshold)
    # Enough rows to mean something, few enough that the table renders them all without scrolling.
    assert 3 <= len(expected) <= 15, f"pick another threshold: {len(expected)} detections"

    set_threshold(page, threshold)
    page.locator(FILE_INPUT).set_input_files(str(image_path))
    page.get_by_text(f"{len(expected)} detections with score > {threshold:.2f}").wait_for()

    assert page.locator("#detections-table [role=grid]").get_attribute("aria-rowcount") == str(len(expected) + 1)
    assert shown_table(page) == table_rows(expected)
    assert "model took" in page.locator("#summary").inner_text()

    # The annotated picture is displayed, and it is exactly the picture with the expected boxes drawn.
    shown = page.locator("#annotated-image img")
    assert shown.evaluate("image => image.complete && image.naturalWidth") == 800  # 512 px, enlarged to 800
    png = page.request.get(shown.get_attribute("src")).body()
    drawn = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    original = load_image(image_path)
    assert np.array_equal(drawn, np.asarray(annotate_for_display(original, expected)))
    assert not np.array_equal(drawn, np.asarray(original))

    report = downloaded_report(page)
    assert report["detections"] == [d.to_dict() for d in expected]
    assert report["image"] == {"name": "astronaut.png", "width": 512, "height": 512}
    assert report["threshold"] == threshold and report["inference_ms"] > 0

    page.screenshot(path=str(artifacts / "demo-detections.png"), full_page=True)

    # Max detections re-runs the model's last stage only: the best three of the same run.
    set_threshold(page, 3, slider="max-detections")
    page.get_by_text(f"3 detections with score > {threshold:.2f} (NMS IoU 0.50, at most 3)").wait_for()
    assert shown_table(page) == table_rows(expected[:3])
    assert "(cached result)" in page.locator("#summary").inner_text()
    set_threshold(page, 100, slider="max-detections")
    page.get_by_text(f"{len(expected)} detections with score > {threshold:.2f} ·").wait_for()


def test_browser_unreadable_upload_shows_the_error_until_the_next_input(page, tmp_path, artifacts):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is a text file, not a picture")
    page.locator(FILE_INPUT).set_input_files(str(broken))
    summary = page.locator("#summary")
    summary.get_by_text("broken.png is not a readable image").wait_for()
    # The error is the summary, not a toast that vanishes; the previous image's results are gone rather than
    # shown as if they belonged to the broken file.
    assert summary.inner_text().startswith(ERROR_PREFIX.strip("*"))
    assert page.get_by_test_id("toast-body").count() == 0
    assert shown_table(page) == []
    assert "Traceback" not in page.content()
    page.screenshot(path=str(artifacts / "demo-unreadable-upload.png"), full_page=True)
    # Moving the threshold re-runs on the same broken file: the message stays.
    set_threshold(page, 0.4)
    page.wait_for_timeout(1000)
    assert "broken.png is not a readable image" in summary.inner_text()


def test_browser_example_click_runs_the_model(page, detector):
    threshold = 0.6
    expected = detector(example_paths(PHOTO_KIND)[0], threshold=threshold)
    set_threshold(page, threshold)
    remove = page.locator("#input-image button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
    page.get_by_text("Upload an image or click one of the examples.").wait_for()
    page.locator("#photo-examples button").first.click()  # the examples are sorted: astronaut.jpg comes first
    page.get_by_text(f"{len(expected)} detections with score > {threshold:.2f}").wait_for()
    assert "is not a readable image" not in page.locator("#summary").inner_text()  # the next input clears it
    report = downloaded_report(page)
    assert report["image"]["name"] == "astronaut.jpg"
    assert report["detections"] == [d.to_dict() for d in expected]


def test_browser_page_names_the_models_and_switching_models_switches_the_examples(page, model_dir, artifacts):
    overview = page.locator("#models-overview").inner_text()
    assert f"Real-photo models: {model_dir.name}" in overview
    assert f"Synthetic-shapes model: {DEFAULT_MODEL_NAME}" in overview
    assert "80 COCO classes" in page.locator("#model-details").inner_text()
    assert str(model_dir) not in page.content()  # the server's folders stay on the server
    assert page.locator("#photo-examples").is_visible() and not page.locator("#shapes-examples").is_visible()

    page.locator("#model input").click()
    page.get_by_role("option", name=DEFAULT_MODEL_NAME, exact=True).click()
    page.locator("#shapes-examples").wait_for(state="visible")
    assert not page.locator("#photo-examples").is_visible()
    assert "Synthetic-shapes demo model" in page.locator("#model-details").inner_text()

    # The first shape example, with the shapes model: every shape the generator drew is found and counted.
    shapes = Detector(default_model_dir(), device="cpu")
    threshold = 0.6
    expected = shapes(example_paths(SHAPES_KIND)[0], threshold=threshold)
    truth = generate_image(1000003, 1)
    assert sorted(d.label for d in expected) == sorted(SHAPE_CLASSES[index] for index in truth.classes)
    page.locator("#shapes-examples button").first.click()
    page.get_by_text(f"{len(expected)} detections with score > {threshold:.2f}").wait_for()
    assert shown_table(page) == table_rows(expected)
    assert "circle 2, cross 2, square 1, star 1, triangle 1" in page.locator("#summary").inner_text()
    page.screenshot(path=str(artifacts / "demo-shapes-model.png"), full_page=True)

    page.locator("#model input").click()
    page.get_by_role("option", name=model_dir.name, exact=True).click()
    page.locator("#photo-examples").wait_for(state="visible")
    assert not page.locator("#shapes-examples").is_visible()


def test_browser_video_tab_returns_the_annotated_clip_and_a_line_per_frame(page, model_dir, artifacts, tmp_path):
    clip = tmp_path / "shapes.webm"
    write_clip(clip, frames=5)
    # The model, threshold and classes picked on the Image tab apply: the shapes model for a clip of shapes.
    page.locator("#model input").click()
    page.get_by_role("option", name=DEFAULT_MODEL_NAME, exact=True).click()
    page.locator("#shapes-examples").wait_for(state="visible")
    page.get_by_role("tab", name="Video").click()
    page.locator("#input-video input[type=file]").set_input_files(str(clip))
    summary = page.locator("#video-summary")
    summary.get_by_text("(0.5 s at 10 frames/s)").wait_for()  # "5 frames" alone is also the progress bar's text
    assert summary.inner_text().startswith("5 frames (0.5 s at 10 frames/s)")
    video = page.locator("#annotated-video video")
    video.wait_for()
    # The browser plays the annotated clip: its first frame is decoded, enlarged as small pictures are.
    page.wait_for_function("() => document.querySelector('#annotated-video video').readyState >= 2")
    assert video.evaluate("element => [element.videoWidth, element.videoHeight]") == [800, 640]
    with page.expect_download() as download:
        page.locator("#video-report a").first.click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert all(json.loads(line)["detections"] for line in lines)
    assert page.get_by_test_id("toast-body").count() == 0
    page.screenshot(path=str(artifacts / "demo-video.png"), full_page=True)
    page.get_by_role("tab", name="Image").click()


def test_browser_webcam_tab_streams_annotated_frames_with_their_rate(page, artifacts, client, model_dir):
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("Click to Access Webcam").click()
    record = page.locator("#webcam button[aria-label='capture photo']")  # its text says Record, then Stop
    record.get_by_text("Record").click()
    try:
        rate = page.locator("#webcam-rate")
        rate.get_by_text("frames/s").wait_for()  # the second answered frame has a rate
        assert "model took" in rate.inner_text()
        page.wait_for_function(
            "() => { const image = document.querySelector('#webcam-annotated img');"
            " return image && image.complete && image.naturalWidth >= 800; }"
        )  # fake camera frames of 640x480, shown enlarged to 800x600
        page.screenshot(path=str(artifacts / "demo-webcam.png"), full_page=True)
        # A stream lasts up to 60 s; image requests meanwhile are answered turn by turn with its frames, not
        # after it ends.
        started = time.monotonic()
        detect_over_api(client, IMAGES / "tiny_noise.png", model_dir)
        assert time.monotonic() - started < 30
        assert "frames/s" in rate.inner_text()  # still streaming
    finally:
        # A stream left running would keep the model busy for the tests after this one.
        record.get_by_text("Stop").click()
        page.get_by_role("tab", name="Image").click()


@pytest.fixture(scope="module")
def client(demo_url) -> Client:
    return Client(demo_url, verbose=False)


def detect_over_api(client, path, model_dir, threshold=0.5, classes=()):
    """`(annotated image, table, report, summary)` from the demo's API (the model is named after its folder)."""
    image, table, report_path, summary = client.predict(
        handle_file(str(path)), model_dir.name, threshold, list(classes), api_name=f"/{API_NAME}"
    )
    return Image.open(image), table, json.loads(Path(report_path).read_text()), summary


def test_api_returns_the_python_apis_detections(client, model_dir, detector):
    expected = detector(IMAGES / "coffee.png", threshold=0.3)
    image, table, report, summary = detect_over_api(client, IMAGES / "coffee.png", model_dir, threshold=0.3)
    assert report["detections"] == [d.to_dict() for d in expected]
    assert table["headers"] == TABLE_HEADERS and table["data"] == table_rows(expected)
    assert image.size == (800, 533)  # shown at least 800 px wide, so that labels are drawn legibly
    assert f"{len(expected)} detections" in summary


def test_api_class_filter_keeps_only_the_chosen_classes(client, model_dir, detector):
    everything = detector(IMAGES / "coffee.png", threshold=0.3)
    chosen = sorted({d.label for d in everything})[:2]
    _, _, report, summary = detect_over_api(client, IMAGES / "coffee.png", model_dir, threshold=0.3, classes=chosen)
    assert report["detections"] == [d.to_dict() for d in everything if d.label in chosen]
    assert report["classes"] == chosen and ", ".join(chosen) in summary

    with pytest.raises(AppError, match="has no class 'unicorn'"):
        detect_over_api(client, IMAGES / "coffee.png", model_dir, classes=["unicorn"])


def _grayscale(folder: Path) -> Path:
    return IMAGES / "camera.png"


def _rgba(folder: Path) -> Path:
    rgb = Image.open(IMAGES / "chelsea.png").convert("RGB")
    alpha = Image.linear_gradient("L").resize(rgb.size)
    path = folder / "chelsea_rgba.png"
    Image.merge("RGBA", (*rgb.split(), alpha)).save(path)
    return path


def _exif_rotated(folder: Path) -> Path:
    # Stored sideways (400x600) with EXIF orientation 6: viewers, mmdetection and the demo show it 600x400.
    stored = Image.open(IMAGES / "coffee.png").convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = folder / "coffee_rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    return path


def _large(folder: Path) -> Path:
    path = folder / "coffee_large.jpg"
    large = Image.open(IMAGES / "coffee.png").convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC)
    large.save(path, quality=90)
    return path


@pytest.mark.parametrize(
    "make_image", [_grayscale, _rgba, _exif_rotated, _large], ids=["grayscale", "rgba", "exif-rotated", "large-24mp"]
)
def test_api_handles_any_image_the_python_api_reads(client, model_dir, detector, tmp_path, make_image):
    path = make_image(tmp_path)
    upright = load_image(path)
    expected = detector(upright, threshold=0.3)
    image, _, report, _ = detect_over_api(client, path, model_dir, threshold=0.3)
    assert report["detections"] == [d.to_dict() for d in expected]
    assert (report["image"]["width"], report["image"]["height"]) == upright.size
    scale = display_scale(upright.size)
    assert image.size == (round(upright.width * scale), round(upright.height * scale))


def test_api_reports_an_unreadable_file_in_plain_words(client, model_dir, tmp_path):
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 a JPEG header and nothing else")
    with pytest.raises(AppError, match="holiday.jpg"):
        detect_over_api(client, broken, model_dir)


def _resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


LOAD_REQUESTS = 50
LOAD_TIMEOUT_S = 600  # for the whole round; every request waits in the queue behind the others
RSS_GROWTH_BOUND_MIB = 64


def test_server_answers_concurrent_requests_without_errors_or_memory_growth(demo_server, client, model_dir, tmp_path):
    """Two rounds of 50 concurrent requests, each on a different image (no cached result to lean on): every
    request is answered, with the detections of its own image, and the server's resident memory after the
    second round is within 64 MiB of what it was after the first (caches are bounded; nothing leaks)."""
    _, server = demo_server
    generator = np.random.default_rng(7)
    resident = []
    for round_index in range(2):
        paths = []
        for index in range(LOAD_REQUESTS):
            path = tmp_path / f"round{round_index}_{index}.png"
            size = (int(generator.integers(48, 160)), int(generator.integers(48, 160)))
            Image.fromarray(generator.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
            paths.append(path)
        started = time.monotonic()
        jobs = [
            client.submit(handle_file(str(path)), model_dir.name, 0.0, [], api_name=f"/{API_NAME}")
            for path in paths
        ]
        for path, job in zip(paths, jobs):
            remaining = LOAD_TIMEOUT_S - (time.monotonic() - started)
            _, _, report_path, summary = job.result(timeout=max(remaining, 1))
            report = json.loads(Path(report_path).read_text())
            width, height = Image.open(path).size
            assert (report["image"]["width"], report["image"]["height"]) == (width, height), summary
        resident.append(_resident_mib(server.pid))
    assert resident[1] - resident[0] <= RSS_GROWTH_BOUND_MIB, (
        f"resident memory grew from {resident[0]:.0f} to {resident[1]:.0f} MiB"
    )
