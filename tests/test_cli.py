"""The entry points end to end, on the small cluttered_digits config and a tiny model."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from entry_points import TINY, run, run_to_json, train_refused


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    model_dir = base / "run"
    result = run("rarl_tf.train", *TINY, f"--model_dir={model_dir}", data_dir=base / "tfds")
    assert result.returncode == 0, result.stderr[-3000:]
    return base, model_dir, result


def independent_map(base, model_dir, images: int) -> float:
    """The trained model's mAP on the first `images` test canvases (one view), computed here:
    the Keras model's probabilities and scikit-learn's average precision per class."""
    import dataclasses

    from sklearn.metrics import average_precision_score

    from rarl_tf import model_folder
    from rarl_tf.data import pipeline, splits

    config = model_folder.load_config(str(model_dir))
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, data_dir=str(base / "tfds"))
    )
    model, _ = model_folder.load_trained(str(model_dir))
    examples = splits.load_split(config, "eval").take(images)
    scores, labels = [], []
    for pixels, batch_labels, _ in pipeline.eval_batches(examples, config.model.image_size, 32):
        scores.append(model(pixels, training=False)["probs"].numpy())
        labels.append(batch_labels.numpy())
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    assert len(scores) == images
    present = labels.sum(0) > 0
    return float(
        np.mean(
            [average_precision_score(labels[:, c], scores[:, c]) for c in np.flatnonzero(present)]
        )
    )


def test_train_writes_metrics_and_artifacts(trained):
    base, model_dir, _ = trained
    metrics = json.loads((model_dir / "metrics.json").read_text())
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "views", "num_images"):
        assert key in metrics
    assert metrics["num_images"] == 64 and metrics["views"] == 1
    # The mAP is the trained model's own, not any number in [0, 1].
    assert metrics["mAP"] == pytest.approx(independent_map(base, model_dir, 64), abs=1e-5)
    for name in ("config.json", "model.weights.h5", "history.csv"):
        assert (model_dir / name).exists(), name
    assert len((model_dir / "history.csv").read_text().strip().splitlines()) == 3  # header + 2


def test_rerun_resumes_instead_of_starting_over(trained):
    base, model_dir, _ = trained
    again = run("rarl_tf.train", *TINY, f"--model_dir={model_dir}", data_dir=base / "tfds")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from" in again.stdout + again.stderr
    assert "step 6" in again.stdout + again.stderr  # 2 epochs x 3 steps were already done
    assert len((model_dir / "history.csv").read_text().strip().splitlines()) == 3


def evaluate_ten_views(base, output, *model_dirs, markdown=False):
    """`rarl_tf.evaluate` of `model_dirs` on 10 views of the data under `base`, into `output`,
    with markdown tables on stdout if `markdown`: (its result, the metrics it wrote)."""
    flags = [f"--model_dir={d}" for d in model_dirs] + ["--views=10"]
    if markdown:
        flags.append("--format=markdown")
    return run_to_json("rarl_tf.evaluate", *flags, output=output, data_dir=base / "tfds")


@pytest.fixture(scope="module")
def ten_views(trained):
    """The trained model's metrics on 10 views, as `rarl_tf.evaluate` writes them."""
    base, model_dir, _ = trained
    return evaluate_ten_views(base, base / "ten.json", model_dir)[1]


def test_evaluate_ten_views(ten_views):
    assert ten_views["views"] == 10 and ten_views["num_images"] == 64


def test_predict_draws_attention_and_survives_a_bad_file(trained):
    base, model_dir, _ = trained
    good = base / "canvas.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8)).save(good)
    bad = base / "broken.jpg"
    bad.write_bytes(b"not an image")
    result = run(
        "rarl_tf.predict",
        f"--model_dir={model_dir}",
        f"--output_dir={base / 'pred'}",
        str(bad),
        str(good),
        data_dir=base / "tfds",
    )
    assert result.returncode == 1
    assert "broken.jpg" in result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["image"] == str(good)
    assert set(record["scores"]) == {str(d) for d in range(10)}
    assert all(p >= 0.1 for _, p in record["labels"]) and len(record["labels"]) <= 3
    picture = Image.open(base / "pred" / "canvas_attention.png")
    assert min(picture.size) >= 384


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--num_steps=0", "--num_steps=0 is not allowed"),
        ("--loc_std=-1", "--loc_std=-1.0 is not allowed"),
        ("--anchor_sizes=8,x", "--anchor_sizes=8,x: expected a comma-separated list"),
        ("--dataset=nope", "--dataset=nope is not allowed"),
        ("--backbone=resnet", "--backbone=resnet is not allowed: expected one of"),
        ("--anchor_sizes=8,16", "expected as many ratios as --anchor_sizes has sizes"),
        (
            "--strategy=mirrored --num_cpu_devices=2 --batch_size=15",
            "--batch_size=15 is not allowed: expected a multiple of the 2 replicas",
        ),
        ("--strategy=multi_worker", "--strategy=multi_worker needs the TF_CONFIG"),
    ],
)
def test_bad_flags_stop_with_one_clear_line(tmp_path, flag, message):
    assert message in train_refused(tmp_path, *TINY, *flag.split())


def test_unwritable_model_dir_stops_before_any_work(tmp_path):
    """A file, or a path under one (unwritable even for root, who ignores permission bits):
    atomic.check_folder_can_be's words, as for predict's --output_dir."""
    taken = tmp_path / "a_file"
    taken.write_text("")
    for model_dir, says in [
        (taken, f"--model_dir={taken} is a file, not a folder"),
        (taken / "run", f"--model_dir={taken / 'run'} cannot be made: {taken} is not a folder"),
    ]:
        result = run("rarl_tf.train", *TINY, f"--model_dir={model_dir}", data_dir=tmp_path / "tfds")
        assert result.returncode == 2
        assert says in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "tfds").exists()  # not even the dataset was prepared


def test_voc_recipe_without_data_says_how_to_get_it(tmp_path):
    stderr = train_refused(tmp_path, "--flagfile=voc.flags", data_dir=tmp_path / "empty_tfds")
    assert "voc/2007 is not prepared" in stderr
    assert "tfds build voc/2007" in stderr and "--dataset=voc_dir" in stderr


def test_recipe_flagfiles_hold_the_papers_settings():
    from rarl_tf.config.flags import experiment_config_from_flagfile

    got = {}
    for name in ["voc.flags", "voc640.flags", "coco.flags", "coco640.flags"]:
        c = experiment_config_from_flagfile(os.path.join(ROOT, name))
        got[name] = [
            c.data.dataset,
            c.model.image_size,
            list(c.model.anchor_sizes),
            c.train.batch_size,
            c.train.learning_rate,
            c.model.crop_margin,
        ]
    assert got["voc.flags"] == ["voc2007", 512, [80, 160, 320], 16, 1e-5, 64]
    assert got["voc640.flags"] == ["voc2007", 640, [100, 200, 400], 16, 1e-5, 64]
    assert got["coco.flags"] == ["coco2014", 512, [80, 160, 320], 16, 1e-5, 64]
    assert got["coco640.flags"] == ["coco2014", 640, [100, 200, 400], 16, 1e-5, 64]


def test_two_scale_evaluation_averages_models_and_prints_tables(trained, ten_views, tmp_path):
    import dataclasses

    from rarl_tf.model.factory import build_model
    from rarl_tf.model_folder import WEIGHTS_FILE, load_config, save_config

    base, model_dir, _ = trained
    config = load_config(str(model_dir))
    bigger = dataclasses.replace(config, model=dataclasses.replace(config.model, image_size=48))
    other = tmp_path / "n48"
    save_config(bigger, str(other))
    build_model(bigger.model, 10, seed=1).save_weights(str(other / WEIGHTS_FILE))

    result, combined = evaluate_ten_views(
        base, tmp_path / "two.json", model_dir, other, markdown=True
    )
    assert list(combined["per_model"]) == ["run (40)", "n48 (48)"]
    assert combined["num_images"] == 64 and combined["views"] == 10
    # Table 1 (per-class AP, 10 digit classes) and Table 2 (CP ... OF1), one row per model.
    assert "| method | 0 | 1 | 2 |" in result.stdout
    assert "| method | CP | CR | CF1 | OP | OR | OF1 | mAP |" in result.stdout
    for row in ("| run (40) |", "| n48 (48) |", "| combined |"):
        assert result.stdout.count(row) == 2, row
    # Each model's row is that model evaluated alone.
    assert ten_views["mAP"] == combined["per_model"]["run (40)"]["mAP"]


# Slow (30 s of a worker): the whole tools.policy_report command end to end; its parts (oracle,
# classes found, paired bootstrap, forced locations) have fast tests in
# tests/evaluation/test_policy_report.py. Slow-marked to keep .ci/run under 600 s.
@pytest.mark.slow
def test_policy_report_compares_the_policy_with_random_centres(trained):
    base, model_dir, _ = trained
    out = base / "report" / "policy.json"
    result, report = run_to_json(
        "tools.policy_report",
        f"--model_dir={model_dir}",
        "--max_images=40",
        "--samples=3",
        output=out,
        data_dir=base / "tfds",
    )
    assert report["images"] == 40
    # The policy's row is the trained model's mAP on those 40 canvases, computed here.
    assert report["policy"]["mAP"] == pytest.approx(independent_map(base, model_dir, 40), abs=1e-5)
    for name in ("policy", "random"):
        row = report[name]
        assert len(row["step_centre_inside"]) == 2 and len(row["step_distance"]) == 1  # T = 2
        # A digit found at some step is found by the union of the steps.
        assert row["union_centre_inside"] >= max(row["step_centre_inside"]) - 1e-9
        assert row["objects"] > 40  # several digits per canvas
    assert report["random"]["step_distance"][0] > 0.1  # random centres move
    assert report["learned_minus_random_mAP"] == pytest.approx(
        report["policy"]["mAP"] - report["random"]["mAP"]
    )
    variation = report["reward_variation"]
    assert variation["samples"] == 3 and 0.0 <= variation["top_n_varies"] <= 1.0
    assert report["gradient"]["batches"] == 2 and report["gradient"]["snr"] > 0.0
    assert (base / "report" / "policy.md").read_text().startswith("| placement (same weights) |")
    assert "| random: uniform random centres |" in result.stdout
    placements = report["placements"]
    for name in ("zero_state", "other_image_state", "batch_mean_state", "first_state_held"):
        assert 0.0 <= placements[name]["cells_kept"] <= 1.0, name
    # The paper's dense head has no cells to inhibit: no inhibition rows.
    assert "random_inhibited" in placements and "inhibition_off" not in placements
    # The oracle's centres sit on digits: each step finds a digit in every one of the 40 images.
    oracle = placements["oracle"]
    assert all(share * oracle["objects"] >= 40 - 1e-6 for share in oracle["step_centre_inside"])
    assert placements["oracle"]["classes_found"] > placements["random"]["classes_found"]
    for name in ("policy - batch_mean_state", "oracle - policy", "policy - random"):
        d = report["differences"][name]
        a, b = name.split(" - ")
        assert d["difference"] == pytest.approx(placements[a]["mAP"] - placements[b]["mAP"])
        assert d["low"] <= d["difference"] <= d["high"], name
    assert 0.0 < placements["batch_mean_state"]["cells_kept_as_sets"] <= 1.0
    table = run("tools.policy_report", f"--compare={out}", data_dir=base / "tfds")
    assert table.returncode == 0, table.stderr[-2000:]
    row = [line for line in table.stdout.splitlines() if line.startswith("| policy |")][0]
    assert f"{100 * report['policy']['mAP']:.1f}" in row


def test_training_draws_attention_pictures_for_tensorboard(trained):
    import glob

    import tensorflow as tf

    _, model_dir, _ = trained
    steps = []
    for path in glob.glob(str(model_dir / "logs" / "attention" / "events*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            steps += [event.step for value in event.summary.value if value.tag == "attention"]
    assert sorted(steps) == [1, 2]  # one picture set per epoch (TINY trains 2 epochs)
