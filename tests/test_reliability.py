"""Issue 22: nothing a user keeps is lost, unreadable or silently wrong.

One test per case of the issue (numbers in the names), through the command line where a user
meets it; each fails on the code of 2026-11-27 (commit 4dd8deb).
"""

import io
import json
import os
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from conftest import ROOT, run_python, tiny_model_config, tiny_voc_run
from entry_points import run
from fake_tfds import as_dataset_fn
from rarl_tf import atomic, cli, model_folder
from rarl_tf.config.experiment import DataConfig, ExperimentConfig
from voc_files import write_voc


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


# 1. export.tflite: refuses to overwrite without --overwrite; a failed re-export keeps the pair.
def test_1_tflite_export_refuses_an_existing_export_and_replaces_the_pair_whole(
    tiny_model_dir, tmp_path, monkeypatch, umask_022
):
    from rarl_tf.export import tflite

    output, labels = tmp_path / "m.tflite", tmp_path / "m.labels.txt"
    output.write_bytes(b"the good model")
    labels.write_text("the good labels\n")
    result = run(
        "export.tflite", f"--model_dir={tiny_model_dir}", f"--output={output}", data_dir=tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{output} exists" in errors[0] and "--overwrite" in errors[0]
    assert output.read_bytes() == b"the good model"

    # A re-export that fails while writing leaves both files as they were.
    real_open = open

    def failing_open(path, mode="r", *args, **kwargs):
        if "labels" in os.path.basename(str(path)) and "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OSError):
        tflite.write_pair(str(output), b"new model", ["0", "1"], overwrite=True)
    monkeypatch.undo()
    assert output.read_bytes() == b"the good model"
    assert labels.read_text() == "the good labels\n"

    tflite.write_pair(str(output), b"new model", ["0", "1"], overwrite=True)
    assert output.read_bytes() == b"new model" and labels.read_text() == "0\n1\n"
    assert _mode(output) == _mode(labels) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.labels.txt", "m.tflite"]


@pytest.mark.slow  # a real conversion: ~40 s on 2 shared cores
def test_1_tflite_export_with_overwrite_replaces_the_pair(tiny_model_dir, tmp_path, umask_022):
    from rarl_tf.export import tflite

    output, labels = tmp_path / "m.tflite", tmp_path / "m.labels.txt"
    output.write_bytes(b"the old model")
    labels.write_text("old\n")
    tflite.export(str(tiny_model_dir), str(output), "none", overwrite=True)
    assert output.read_bytes()[4:8] == b"TFL3"
    assert labels.read_text().split() == [str(d) for d in range(10)]
    assert _mode(output) == _mode(labels) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.labels.txt", "m.tflite"]


# 2, 5, 6, 9: predict's outputs, its reader, odd files and the picture size, in one run.
@pytest.mark.slow  # ~25 s on 2 shared cores; the default run has the in-process tests below
def test_2_5_6_9_predict_keeps_every_picture_reads_16_bit_skips_a_fifo_caps_the_picture(
    tiny_model_dir, tmp_path
):
    for folder in ("a", "b", "out"):
        (tmp_path / folder).mkdir()
    rng = np.random.default_rng(0)
    first = _png(tmp_path / "a" / "x.png", rng.integers(0, 256, (30, 30, 3), np.uint8))
    second = _png(tmp_path / "b" / "x.png", rng.integers(0, 256, (30, 30, 3), np.uint8))
    kept = tmp_path / "out" / "x_attention.png"
    kept.write_bytes(b"a picture of an earlier run")
    gradient = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (48, 1))
    deep = _png(tmp_path / "deep16.png", (gradient * 257).astype(np.uint16))  # mode I;16
    shallow = _png(tmp_path / "shallow8.png", gradient.astype(np.uint8))
    long = _png(tmp_path / "long.png", np.full((1, 20000, 3), 200, np.uint8))
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    start = time.time()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rarl_tf.predict",
            f"--model_dir={tiny_model_dir}",
            f"--output_dir={tmp_path / 'out'}",
            str(first),
            str(second),
            str(fifo),
            str(deep),
            str(shallow),
            str(long),
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )  # a blocked FIFO fails here
    seconds = time.time() - start
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(fifo) in errors[0] and "FIFO" in errors[0], errors
    records = {r["image"]: r for r in map(json.loads, result.stdout.strip().splitlines())}
    assert list(records) == [str(first), str(second), str(deep), str(shallow), str(long)]
    # 2: two pictures for a/x.png and b/x.png, the earlier run's picture untouched.
    pictures = [records[str(p)]["attention_image"] for p in (first, second)]
    assert len(set(pictures)) == 2 and str(kept) not in pictures
    assert all(Image.open(p).size == (384, 384) for p in pictures)
    assert kept.read_bytes() == b"a picture of an earlier run"
    # 5: the 16-bit PNG scores as its 8-bit copy.
    deep_scores, shallow_scores = (
        np.array(list(records[str(p)]["scores"].values())) for p in (deep, shallow)
    )
    assert np.abs(deep_scores - shallow_scores).max() <= 0.02
    # 6: 1 x 20000 gives a picture of at most 4096 px on its long side.
    assert max(Image.open(records[str(long)]["attention_image"]).size) <= 4096
    print(json.dumps({"fifo_and_all_seconds": round(seconds, 1)}))


def test_2_9_predict_files_never_overwrite_a_picture_and_skip_a_fifo(tmp_path):
    from rarl_tf.inference import prediction

    for folder in ("a", "b", "out"):
        (tmp_path / folder).mkdir()
    kept = tmp_path / "out" / "x_attention.png"
    kept.write_bytes(b"a picture of an earlier run")
    inputs = [
        _png(tmp_path / folder / "x.png", np.full((20, 20, 3), 9, np.uint8))
        for folder in ("a", "b")
    ]
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    fake = {
        "probs": np.full((1, 2), 0.5),
        "boxes": np.full((1, 2, 1, 4), 0.5),
        "centres": np.full((1, 2, 2), 0.5),
    }
    records = [
        prediction.predict_file(
            str(path), lambda images: fake, 40, ["a", "b"], 1, 0.1, str(tmp_path / "out")
        )
        for path in inputs
    ]
    pictures = [r["attention_image"] for r in records]
    assert [os.path.basename(p) for p in pictures] == ["x_attention-2.png", "x_attention-3.png"]
    assert all(Image.open(p).size == (384, 384) for p in pictures)
    assert kept.read_bytes() == b"a picture of an earlier run"
    start = time.time()
    with pytest.raises(
        ValueError,
        match=r"fifo.png: it is a FIFO \(named pipe\), not a "
        r"regular file",
    ):
        prediction.load_image(str(fifo))
    assert time.time() - start < 5


def test_5_one_reader_16_bit_palette_alpha_and_cmyk_as_the_pipeline_decodes_them(tmp_path):
    from rarl_tf.data import image_header
    from rarl_tf.inference import prediction

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 30, 3), np.uint8)
    gradient = np.tile(np.arange(0, 256, 2, dtype=np.uint16), (8, 1))
    files = {
        "deep.png": Image.fromarray((gradient * 257).astype(np.uint16)),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "alpha.png": Image.fromarray(rgb).convert("RGBA"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
        pipeline = image_header.decode(tf.constant((tmp_path / name).read_bytes()), 10**6)
        np.testing.assert_array_equal(
            np.asarray(prediction.load_image(str(tmp_path / name))), pipeline.numpy(), err_msg=name
        )
    deep = np.asarray(prediction.load_image(str(tmp_path / "deep.png")))
    np.testing.assert_array_equal(deep[..., 0], gradient)  # scaled to 8 bits, not clipped


def test_6_drawing_fails_inside_the_per_image_handling(tiny_model_dir, tmp_path, monkeypatch):
    from rarl_tf.inference import prediction, visualize

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(visualize, "draw_attention", out_of_memory)
    image = _png(tmp_path / "x.png", np.zeros((20, 20, 3), np.uint8))
    fake = {
        "probs": np.full((1, 2), 0.5),
        "boxes": np.zeros((1, 2, 1, 4)),
        "centres": np.zeros((1, 2, 2)),
    }
    with pytest.raises(ValueError, match=r"attention picture of \S+x.png"):
        prediction.predict_file(
            str(image), lambda images: fake, 40, ["a", "b"], 1, 0.1, str(tmp_path)
        )
    assert visualize.picture_size(1, 20000, 384) == (1, 4096)
    assert visualize.picture_size(100000, 1, 384) == (4096, 1)


# 3. A training stream that runs out fails, naming how many steps ran; nothing final written.
def test_3_a_run_whose_data_runs_out_fails_naming_the_steps_and_writes_no_model(tmp_path):
    from rarl_tf.training import trainer

    config = tiny_voc_run(steps_per_epoch=3)
    # 8 of 12 images do not decode: two passes hold 8 good images, 2 batches of the 3 steps.
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(12, undecodable=tuple(range(8)))):
        with pytest.raises(trainer.TrainingIncomplete) as err:
            trainer.train(config, str(tmp_path), verbose=0)
    message = str(err.value)
    assert "made 2 of its 3 remaining steps" in message and "16 images" in message
    assert isinstance(err.value, cli.RunFailed)  # exit status 1, one line
    assert not (tmp_path / "model.weights.h5").exists()
    assert not (tmp_path / "model.keras").exists()


def _voc_model_dir(tmp_path, images, max_pixels):
    """A model_dir trained (randomly initialised) on the voc_dir folder holding `images` as its
    test split."""
    from rarl_tf.data import voc_dir
    from rarl_tf.model.factory import build_model
    from rarl_tf.model_folder import WEIGHTS_FILE

    voc_dir.read_split.cache_clear()
    root = write_voc(tmp_path / "VOC2007", images)
    (root / "ImageSets/Main/test.txt").write_text("\n".join(images) + "\n")
    model_dir = tmp_path / "model"
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset="voc_dir", data_dir=str(root), max_pixels=max_pixels),
        class_names=tuple(voc_dir.VOC_CLASSES),
    )
    model_folder.save_config(config, str(model_dir))
    build_model(config.model, 20, seed=0).save_weights(str(model_dir / WEIGHTS_FILE))
    return model_dir


def _jpeg(side):
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _skipping_voc_model_dir(tmp_path):
    """6 test images, 000002 and 000005 over the run's --max_pixels (40 x 40 > 1000)."""
    images = {
        f"00000{i}": ([("dog", False)], _jpeg(40 if i in (2, 5) else 10)) for i in range(1, 7)
    }
    return _voc_model_dir(tmp_path, images, max_pixels=1000)


# 4. evaluate counts and names what it skipped (and train's metrics.json, same function).
def test_4_evaluation_counts_and_names_the_skipped_images(tmp_path, capfd):
    from rarl_tf.evaluation import scoring
    from rarl_tf.model_folder import load_trained

    model, config = load_trained(str(_skipping_voc_model_dir(tmp_path)))
    metrics = scoring.evaluate(model, config)
    assert metrics["num_images"] == 4 and metrics["skipped_images"] == 2
    assert [os.path.basename(name) for name in metrics["skipped"]] == ["000002.jpg", "000005.jpg"]
    assert "2 of 6 evaluation images" in capfd.readouterr().err


@pytest.mark.slow  # the same through the command line (~20 s)
def test_4_evaluate_writes_the_skip_counts_in_its_output(tmp_path):
    model_dir = _skipping_voc_model_dir(tmp_path)
    output = tmp_path / "m.json"
    result = run(
        "rarl_tf.evaluate", f"--model_dir={model_dir}", f"--output={output}", data_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(output.read_text())
    assert metrics["num_images"] == 4 and metrics["skipped_images"] == 2
    assert "2 of 6 evaluation images" in result.stderr


# 12. evaluate --output into a missing folder fails before scoring anything.
def test_12_evaluate_output_into_a_missing_folder_fails_before_scoring(tiny_model_dir, tmp_path):
    start = time.time()
    missing = run(
        "rarl_tf.evaluate",
        f"--model_dir={tiny_model_dir}",
        f"--output={tmp_path / 'no' / 'such' / 'm.json'}",
        data_dir=tmp_path,
    )
    assert missing.returncode == 2
    assert "Scoring" not in missing.stdout  # refused before any image was scored
    errors = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--output=" in errors[0] and "does not exist" in errors[0]
    print(json.dumps({"missing_output_seconds": round(time.time() - start, 1)}))


# 7. Files in MODEL_DIR and exported versions get the umask's permissions.
def test_7_run_files_get_the_umask_permissions_and_are_fsynced(tmp_path, monkeypatch, umask_022):
    from rarl_tf.model.factory import build_model

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    model = build_model(tiny_model_config(), 10, seed=0)
    atomic.write_json(str(tmp_path / "metrics.json"), {"mAP": 1.0})
    model_folder.save_weights(model, str(tmp_path / "model.weights.h5"))
    model_folder.save_keras(model, str(tmp_path / "model.keras"))
    model_folder.save_config(ExperimentConfig(), str(tmp_path))
    for name in ("metrics.json", "model.weights.h5", "model.keras", "config.json"):
        assert _mode(tmp_path / name) == 0o644, name
    assert len(synced) >= 8  # each file, and the folder after each rename
    os.umask(0o027)
    atomic.write_json(str(tmp_path / "private.json"), {})
    assert _mode(tmp_path / "private.json") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "metrics.json",
        "model.keras",
        "model.weights.h5",
        "private.json",
    ]


# 8. Concurrent SavedModel exports take distinct versions; staging always cleaned.
def test_8_saved_model_export_retries_a_taken_version_and_never_leaks_staging(
    tiny_model_dir, tmp_path, monkeypatch, umask_022
):
    from rarl_tf.export import saved_model

    base = tmp_path / "exported"
    real_warmup = saved_model.write_warmup_requests

    def competitor_takes_version_1(version_dir, *args):
        # Another export finishes version 1 while this one is still writing.
        (base / "1").mkdir()
        (base / "1" / "saved_model.pb").write_bytes(b"the other export")
        return real_warmup(version_dir, *args)

    monkeypatch.setattr(saved_model, "write_warmup_requests", competitor_takes_version_1)
    target = saved_model.export(str(tiny_model_dir), str(base))
    assert target == str(base / "2")
    assert (base / "1" / "saved_model.pb").read_bytes() == b"the other export"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no .staging-* left
    assert _mode(base / "2") == 0o755
    for folder, subfolders, names in os.walk(base / "2"):
        assert all(_mode(os.path.join(folder, d)) == 0o755 for d in subfolders)
        assert all(_mode(os.path.join(folder, n)) == 0o644 for n in names)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", disk_full)
    with pytest.raises(OSError):
        saved_model.export(str(tiny_model_dir), str(base))
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


# 9. voc_dir's image check does not open a FIFO for reading.
def test_9_a_fifo_in_a_voc_folder_is_skipped_not_waited_on(tmp_path):
    from rarl_tf.data import voc_dir

    voc_dir.read_split.cache_clear()
    root = write_voc(
        tmp_path / "VOC2007",
        {"000001": ([("dog", False)], _jpeg(10)), "000002": ([("cat", False)], None)},
    )
    fifo = root / "JPEGImages" / "000002.jpg"
    os.mkfifo(fifo)
    done = {}
    reader = threading.Thread(
        target=lambda: done.update(split=voc_dir.read_split(str(root), "trainval")), daemon=True
    )
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_split blocked on a FIFO")
    split = done["split"]
    assert [os.path.basename(p) for p in split.image_paths] == ["000001.jpg"]
    assert len(split.skipped) == 1 and "FIFO" in split.skipped[0]


# 10. The lock file is not followed through a symlink.
def test_10_a_lock_symlink_is_refused_and_its_target_untouched(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    os.symlink(victim, model_dir / ".lock")
    with pytest.raises(SystemExit) as exit_info:
        cli.user_errors_exit(lambda argv: model_folder.acquire(str(model_dir)))([""])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".lock is a symbolic link" in err[0]
    assert victim.read_text() == "someone else's file"


# 11. config.json goes through the flags' types and validation.
@pytest.mark.parametrize(
    "change, expected",
    [
        (
            ("model", "backbone", {"image_size": "64"}),
            'model.backbone.image_size = "64" is not allowed: expected an integer',
        ),
        (
            ("eval", "voc07_ap", "false"),
            'eval.voc07_ap = "false" is not allowed: expected true or false',
        ),
        (("model", "regions", {"anchor_sizes": [8, "16"]}), "expected a list of numbers"),
        (("model", "agent", {"num_steps": 0}), "--num_steps=0 is not allowed"),
        (("extra", None, {}), "unknown sections ['extra']"),
    ],
    ids=["string for int", "string for bool", "list item", "validated", "unknown section"],
)
def test_11_config_values_are_typed_and_validated_on_load(
    tiny_model_dir, tmp_path, change, expected
):
    import shutil

    from rarl_tf.model_folder import load_config

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    raw = json.loads((model_dir / "config.json").read_text())
    section, key, value = change
    if key is None:
        raw[section] = value
    elif isinstance(value, dict):  # the model's sections
        raw[section][key].update(value)
    else:
        raw[section][key] = value
    (model_dir / "config.json").write_text(json.dumps(raw))
    with pytest.raises(model_folder.CorruptFile) as err:
        load_config(str(model_dir))
    assert expected in str(err.value) and "config.json" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.slow  # the same through the command line (~15 s)
def test_11_a_string_image_size_is_one_error_line_through_predict(tiny_model_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    raw = json.loads((model_dir / "config.json").read_text())
    raw["model"]["backbone"]["image_size"] = "64"
    (model_dir / "config.json").write_text(json.dumps(raw))
    image = _png(tmp_path / "x.png", np.zeros((20, 20, 3), np.uint8))
    result = run("rarl_tf.predict", f"--model_dir={model_dir}", str(image), data_dir=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model.backbone.image_size" in errors[0]
    assert "integer" in errors[0]


# Multi-worker: workers that restored different steps stop instead of training out of step.
SAME_STEP = r"""
import sys
from rarl_tf import cli
from rarl_tf.training import distribute
distribute.split_cpu(2)
strategy = distribute.make_strategy("mirrored", 2)
distribute.check_same_step(strategy, 5)
try:
    distribute.check_same_step(strategy, 5, value_fn=lambda replica: [4, 6][replica])
except cli.RunFailed as err:
    print("refused:", err)
"""


def test_workers_that_restored_different_steps_stop():
    result = run_python("-c", SAME_STEP, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused: the workers restored different steps [4, 6]" in result.stdout
