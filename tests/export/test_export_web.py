"""`python -m export.web` in a real browser: Debian's chromium, headless, driven by puppeteer-core
(tests/export/web_browser.mjs), the page served by `python -m http.server` from 127.0.0.1.

One tiny digits model trained here, one site exported as a user does (float16, the default)
plus a float32 one, one browser for the module: the browser tests share all of them, as they
are the slow part. Where chromium or `npm ci`'s packages are missing the tests skip saying so,
except under CI=true, where they fail (.ci/run installs both).
"""

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import DIGITS_POLICY, ROOT, python_env, tiny_model_config

CHROMIUM = os.environ.get("RARL_CHROMIUM", "/usr/lib/chromium/chromium")
DRIVER = os.path.join(ROOT, "tests", "export", "web_browser.mjs")
PUPPETEER = os.path.join(ROOT, "node_modules", "puppeteer-core", "package.json")


def _canvases(count: int, pool: str, seed: int):
    """`count` cluttered_digits canvases (128 px, uint8) of the pool, and their multi-hot labels."""
    from sklearn.datasets import load_digits

    from rarl_tf.data.cluttered_digits import make_canvas, source_pools

    digits = load_digits()
    rng = np.random.default_rng(seed)
    made = [
        make_canvas(rng, digits.images / 16.0, digits.target, source_pools()[pool], 128)
        for _ in range(count)
    ]
    return [m["image"] for m in made], np.float32([m["labels"] for m in made])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder holding runs/digits: a tiny model of digits.flags's policy trained 8 steps on
    canvases here, saved as `rarl_tf.train` leaves it (config.json and weights)."""
    import keras

    from rarl_tf.config.experiment import DataConfig, ExperimentConfig
    from rarl_tf.inference.prediction import model_input
    from rarl_tf.model.factory import build_model
    from rarl_tf.model_folder import WEIGHTS_FILE, save_config, save_weights

    base = tmp_path_factory.mktemp("web")
    model_dir = base / "runs" / "digits"
    model_dir.mkdir(parents=True)
    config = ExperimentConfig(
        model=tiny_model_config(**DIGITS_POLICY),
        data=DataConfig(dataset="cluttered_digits/small"),
        class_names=tuple(str(d) for d in range(10)),
    )
    pictures, labels = _canvases(64, "train", seed=0)
    images = np.concatenate([model_input(Image.fromarray(p), 40) for p in pictures])
    keras.utils.set_random_seed(0)
    model = build_model(config.model, 10, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    model.fit(images, labels, batch_size=16, epochs=2, verbose=0)
    save_config(config, str(model_dir))
    save_weights(model, str(model_dir / WEIGHTS_FILE))
    return base


@pytest.fixture(scope="module")
def sites(runs):
    """{"float16": the site of the README's command, run as a user runs it from the folder
    holding runs/digits, "none": a float32 site exported in this process}."""
    from rarl_tf.export import web

    env = python_env(TFDS_DATA_DIR=str(runs / "tfds"))
    command = [sys.executable, "-m", "export.web", "--model_dir=runs/digits", "--output=site"]
    result = subprocess.run(command, cwd=runs, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Web page written to site (float16 model, 4 sample images)" in result.stdout
    web.export(str(runs / "runs" / "digits"), str(runs / "site32"), "none", samples=0)
    return {"float16": runs / "site", "none": runs / "site32"}


@contextlib.contextmanager
def serving(site):
    """`python -m http.server -d SITE` on a free port of 127.0.0.1, for the block: its URL."""
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline()
        port = re.search(r"port (\d+)", line)
        assert port, line
        yield f"http://127.0.0.1:{port.group(1)}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


class Browser:
    """The node driver: one chromium, commands as JSON lines (see web_browser.mjs)."""

    def __init__(self):
        self.process = subprocess.Popen(
            ["node", DRIVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, RARL_CHROMIUM=CHROMIUM),
        )

    def ask(self, op, **command):
        self.process.stdin.write(json.dumps({"op": op, **command}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the browser driver stopped (exit {self.process.poll()})"
        answer = json.loads(line)
        assert answer["ok"], answer["error"] + "\n" + "\n".join(answer.get("logs", []))
        return answer

    def call(self, tab, name, *args):
        return self.ask("call", tab=tab, name=name, args=list(args))["value"]

    def close(self):
        self.process.stdin.close()  # the driver closes chromium when its input ends
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _missing() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    if not shutil.which("node") or not os.path.exists(PUPPETEER):
        return "node or puppeteer-core is missing (npm ci in the repository root; .ci/run does)"
    return ""


@pytest.fixture(scope="module")
def browser(request):
    """One browser with a tab per site and backend: "auto" (the README's page as it opens, no
    ?backend=: WebGPU here, the float16 model), "wasm16", "wasm32" and "gpu32". Checked first,
    so that where there is no browser the tests skip before training and exporting."""
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser cannot be had: {missing}")
        pytest.skip(missing)
    sites = request.getfixturevalue("sites")
    with contextlib.ExitStack() as stack:
        # Stopped however the module ends: a server or browser left behind would outlive pytest.
        urls = {name: stack.enter_context(serving(site)) for name, site in sites.items()}
        driver = stack.enter_context(contextlib.closing(Browser()))
        driver.urls, driver.ready = urls, {}
        for tab, url in [
            ("auto", urls["float16"]),
            ("wasm16", urls["float16"] + "?backend=wasm"),
            ("wasm32", urls["none"] + "?backend=wasm"),
            ("gpu32", urls["none"] + "?backend=webgpu"),
        ]:
            opened = driver.ask("open", tab=tab, url=url)
            assert opened["elsewhere"] == [], opened  # the site is self-contained
            driver.ready[tab] = opened["ready"]
        yield driver


@pytest.fixture(scope="module")
def cpu(sites):
    """Python LiteRT on the CPU (`predict --tflite`'s runner) for each site's model."""
    from rarl_tf.inference.prediction import LiteRTPredictor

    return {
        name: LiteRTPredictor(str(site / "model.tflite"), str(site / "model.labels.txt"), "cpu")
        for name, site in sites.items()
    }


def _pixels_base64(pixels: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(pixels, np.float32).tobytes()).decode()


def _file_base64(path) -> str:
    return base64.b64encode(open(path, "rb").read()).decode()


@pytest.mark.parametrize(
    "tab, quantization",
    [("wasm16", "float16"), ("auto", "float16"), ("wasm32", "none"), ("gpu32", "none")],
)
def test_page_outputs_equal_python_litert_on_the_cpu(browser, cpu, tab, quantization):
    """4 random inputs and 4 test canvases, as the model takes them (N x N, 0..255). Not
    constant images: on those the spatial head's cells nearly tie, and LiteRT's GPU kernels pick
    another cell than its CPU ones, in Python as in the browser (measured alike: 3.4e-3)."""
    from canvases import cluttered_canvases

    backend = "wasm" if tab.startswith("wasm") else "webgpu"
    assert browser.ready[tab]["backend"] == backend, browser.ready[tab]
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 255, (1, 40, 40, 3)) for _ in range(4)]
    inputs += cluttered_canvases(4, 40, seed=2)
    worst, times = {"scores": 0.0, "boxes": 0.0, "centres": 0.0}, []
    for pixels in inputs:
        got = browser.call(tab, "runPixels", _pixels_base64(pixels))
        want = cpu[quantization](np.float32(pixels))
        for name, python_name in (("scores", "probs"), ("boxes", "boxes"), ("centres", "centres")):
            difference = np.abs(np.float32(got[name]) - want[python_name].ravel()).max()
            worst[name] = max(worst[name], float(difference))
        assert np.argmax(got["scores"]) == np.argmax(want["probs"][0])
        times.append(got["ms"])
    print(f"{tab}: max |page - LiteRT CPU| {worst}; ms/image {min(times):.1f}-{max(times):.1f}")
    assert max(worst.values()) <= 1e-5, worst


def test_fifty_test_pngs_at_their_own_size_agree_with_predict_tflite(browser, cpu, sites, tmp_path):
    """The page's whole path (decode, resize, run) on WebAssembly against `predict --tflite`'s
    (`prediction.predict_file` with its LiteRT runner): the resized pixels, top-1 and scores."""
    from rarl_tf.inference.prediction import load_image, model_input, predict_file

    pictures, _ = _canvases(50, "test", seed=1)
    rng = np.random.default_rng(1)
    pixel_gap = score_gap = 0.0
    agree = 0
    for i, picture in enumerate(pictures):
        # Crops of 24 to 128 px a side: the 40 px model input is both up- and downsampled.
        height, width = rng.integers(24, 129, size=2)
        path = tmp_path / f"test{i}.png"
        Image.fromarray(picture[:height, :width]).save(path)
        want = predict_file(str(path), cpu["float16"], 40, [str(d) for d in range(10)], 3, 0.1)
        got = browser.call("wasm16", "classifyBytes", _file_base64(path), path.name)
        assert (got["width"], got["height"]) == (width, height)
        page_pixels = np.float32(browser.call("wasm16", "modelInput", _file_base64(path)))
        python_pixels = model_input(load_image(str(path)), 40).ravel()
        pixel_gap = max(pixel_gap, float(np.abs(page_pixels - python_pixels).max()))
        scores = np.float32(list(want["scores"].values()))
        score_gap = max(score_gap, float(np.abs(np.float32(got["scores"]) - scores).max()))
        agree += int(np.argmax(got["scores"]) == np.argmax(scores))
        assert [str(c) for c in got["labels"]] == [name for name, _ in want["labels"]]
    print(f"50 PNGs: top-1 agree {agree}/50, max |score diff| {score_gap:.2e} (predict rounds to")
    print(f"  1e-6), max |resized pixel diff| {pixel_gap:.2e} (0..255 scale)")
    assert agree == 50
    assert score_gap <= 2e-6, score_gap
    assert pixel_gap <= 1e-3, pixel_gap


def _edge_pixels(box, width, height):
    """The pixels (y, x) app.js fills for a box's 2 px outline, inside the canvas."""
    y1, x1, y2, x2 = box
    left, right = sorted(int(np.floor(v * width)) for v in (x1, x2))
    top, bottom = sorted(int(np.floor(v * height)) for v in (y1, y2))
    edges = set()
    for x in range(left, right + 1):
        edges |= {(top, x), (top + 1, x), (bottom - 1, x), (bottom, x)}
    for y in range(top, bottom + 1):
        edges |= {(y, left), (y, left + 1), (y, right - 1), (y, right)}
    return {(y, x) for y, x in edges if 0 <= y < height and 0 <= x < width}


def test_the_served_page_labels_a_test_canvas_and_draws_its_attention(
    browser, cpu, sites, tmp_path
):
    """The acceptance check: the README's site opened as it is, its first test canvas clicked."""
    from rarl_tf.inference.prediction import predict_file
    from rarl_tf.inference.visualize import ITERATION_COLOURS

    # Written with the umask's permissions, as every file of the project.
    mode = (sites["float16"] / "model.tflite").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()
    ready = browser.ready["auto"]
    # SwiftShader's WebGPU adapter is there and takes the whole model: the page picks WebGPU.
    assert ready["backend"] == "webgpu" and "fallback" in ready["adapter"], ready
    browser.ask("click", tab="auto", selector="#samples button", waitFor="#result:not([hidden])")
    shown = browser.call("auto", "result")
    sample = sites["float16"] / "samples" / "sample1.png"
    want = predict_file(str(sample), cpu["float16"], 40, [str(d) for d in range(10)], 3, 0.1)
    labels = browser.ask("text", tab="auto", selector="#labels")["value"]
    for name, score in want["labels"]:
        assert f"{name} \u2713{score:.4f}" in labels, (labels, want)
    timing = browser.ask("text", tab="auto", selector="#timing")["value"]
    assert re.match(r"WebGPU on .*: \d+\.\d ms to run the model", timing), timing
    shot = tmp_path / "page.png"
    browser.ask("screenshot", tab="auto", selector="#picture", path=str(shot))
    picture = np.asarray(Image.open(shot).convert("RGB"))
    assert picture.shape == (384, 384, 3)  # predict's picture size: a 128 px canvas up to 384
    boxes = np.reshape(shown["boxes"], (2, -1, 4))
    for t, step_boxes in enumerate(boxes):
        colour = ITERATION_COLOURS[t]
        edges = set().union(*(_edge_pixels(b, 384, 384) for b in step_boxes))
        coloured = sum(tuple(picture[y, x]) == colour for y, x in edges)
        # The last step is drawn last: every pixel of its outlines has its colour; the first
        # step's may be drawn over by the second's.
        assert coloured >= (len(edges) if t == len(boxes) - 1 else 0.5 * len(edges)), (t, coloured)
        cy, cx = (int(v * 384) for v in shown["centres"][2 * t : 2 * t + 2])
        assert tuple(picture[min(cy, 383), min(cx, 383)]) == colour  # the centre's dot


def test_bad_files_and_browsers_get_one_clear_message(browser, sites, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    browser.ask("upload", tab="auto", path=str(text))
    message = "notes.txt is not an image this page reads (expected JPEG, PNG, BMP or still WebP)."
    browser.ask("wait", tab="auto", selector="#error:not([hidden])")
    assert browser.ask("text", tab="auto", selector="#error")["value"] == message
    png = open(sites["float16"] / "samples" / "sample1.png", "rb").read()
    broken = base64.b64encode(png[: len(png) // 2]).decode()
    assert browser.call("wasm16", "classifyBytes", broken, "half.png")["error"] == (
        "half.png could not be decoded: it starts as a PNG file but is damaged or incomplete."
    )
    url = browser.urls["float16"]
    no_wasm = browser.ask("open", tab="nowasm", url=url, noWasm=True)["ready"]
    assert "it has no WebAssembly" in no_wasm["error"], no_wasm
    bogus = browser.ask("open", tab="bogus", url=url + "?backend=cuda")["ready"]
    assert bogus["error"] == "?backend=cuda is not allowed: expected auto, webgpu or wasm."


def test_export_refuses_an_existing_site_and_a_missing_litert(tiny_model_dir, tmp_path, capsys):
    from rarl_tf import cli
    from rarl_tf.export import web

    (tmp_path / "old").mkdir()
    refused = cli.user_errors_exit(
        lambda argv: web.export(str(tiny_model_dir), str(tmp_path / "old"))
    )
    with pytest.raises(SystemExit) as exit_info:
        refused([""])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists (an earlier export): pass --overwrite" in err
    with pytest.raises(FileNotFoundError, match="npm ci"):
        web.export(str(tiny_model_dir), str(tmp_path / "site"), node_modules=str(tmp_path))
    assert not (tmp_path / "site").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
