import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import hubel
from hubel import layers as L
from hubel.inspect import report

SECTIONS = [
    "headline",
    "model",
    "data",
    "curves",
    "metrics",
    "mistakes",
    "gradcam",
    "filters",
    "featuremaps",
    "environment",
]


@pytest.fixture(scope="module")
def trained():
    (x, y), (x_test, y_test) = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential(
        [
            L.Input((8, 8, 1)),
            L.Rescaling(1 / 255),
            L.Conv2D(8, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, validation_split=0.2, verbose=0)
    return model, history, (x_test, y_test)


def test_report_is_one_small_self_contained_file_with_every_section_in_order(trained, tmp_path):
    model, history, test = trained
    path = report(model, history, test, path=tmp_path / "report.html", title="digits", seed=0)
    page = path.read_text()
    positions = [page.index(f'id="{section}"') for section in SECTIONS]
    assert positions == sorted(positions)
    assert path.stat().st_size < 5_000_000
    assert "<script" not in page and not re.search(r"(src|href)=\"https?://", page)  # nothing from the network
    assert page.count("data:image/png;base64,") >= 6
    accuracy = (model.predict(test[0]).argmax(1) == test[1]).mean()
    assert f"{accuracy:.2%}" in page  # the headline is the real test accuracy


def test_report_takes_outputs_at_hand_instead_of_predicting_again(trained, tmp_path, monkeypatch):
    model, history, test = trained
    outputs = model.predict(test[0])
    first = report(model, history, test, path=tmp_path / "a.html").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("the report predicted although it was given the outputs")

    monkeypatch.setattr(model, "predict", refuse)
    second = report(model, history, test, path=tmp_path / "b.html", outputs=outputs).read_text()
    headline = re.compile(r'<section id="headline">.*?</section>', re.S)
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")  # when it was written: two pages may straddle a minute

    def figures(page):
        return stamp.sub("", headline.search(page).group(0))

    assert figures(first) == figures(second)
    with pytest.raises(hubel.errors.DataError, match="outputs for"):
        report(model, history, test, path=tmp_path / "c.html", outputs=outputs[:10])


def test_report_on_a_model_without_conv_layers_says_why_pictures_are_missing(tmp_path):
    _, (x_test, y_test) = hubel.datasets.load("digits")
    model = hubel.Sequential([L.Input((8, 8, 1)), L.Rescaling(1 / 255), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    page = report(model, None, (x_test, y_test), path=tmp_path / "r.html").read_text()
    assert "Not shown: Grad-CAM needs a layer with a spatial output" in page and 'id="curves"' not in page


def test_report_renders_in_headless_chromium_without_console_errors(trained, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it); the browser check needs it")
    model, history, test = trained
    path = report(model, history, test, path=tmp_path / "report.html")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    dom = subprocess.run([chromium, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for heading in ("Model", "Data", "Training curves", "Per-class metrics and confusion matrix", "Environment"):
        assert f"<h2>{heading}</h2>" in dom.stdout
    assert not [line for line in dom.stderr.splitlines() if "CONSOLE" in line], dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [chromium, *flags, "--window-size=1200,2400", f"--screenshot={shot}", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1200) and pixels.std() > 20  # a page with content, not a blank one
