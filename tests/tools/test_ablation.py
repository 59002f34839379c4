"""The ablation variants are wired as the paper describes, and the discovery score is right."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, tiny_model_config
from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.evaluation.discovery import box_iou, centres_inside, discovery_rates
from rarl_tf.model.factory import build_model
from rarl_tf.training import loop
from tools.ablate import VARIANTS, variant_config


def one_batch(config, batch=4, classes=10):
    side = config.image_size - config.crop_margin
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, side, side, 3)).astype(np.float32)
    labels = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]
    return tf.data.Dataset.from_tensors((images, labels))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_builds_and_trains_a_step(name):
    config = variant_config(ExperimentConfig(model=tiny_model_config()), name).model
    model = build_model(config, 10, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    before = [w.copy() for w in model.get_weights()]
    assert (
        loop.train_steps(
            model, tf.distribute.get_strategy(), one_batch(config), 0, 1, 1, [], verbose=0
        )
        == 1
    )
    changed = [not np.allclose(a, b) for a, b in zip(before, model.get_weights())]
    assert sum(changed) >= 2
    out = model(np.zeros((2, 32, 32, 3), np.float32))
    assert out["probs"].shape == (2, 10)
    np.testing.assert_allclose(out["probs"].numpy().sum(-1), 1.0, rtol=1e-5)


def test_variants_change_what_the_paper_changes():
    base = ExperimentConfig(model=tiny_model_config())
    single = variant_config(base, "single_region").model
    assert single.aspect_ratios == (1.0,) and single.anchor_sizes == (round(224 / 512 * 40),)
    assert variant_config(base, "T=10").model.num_steps == 10
    # Nothing else moves: the variant differs from the base in the named fields only.
    changed = {
        f.name
        for f in dataclasses.fields(base.model)
        if getattr(base.model, f.name) != getattr(variant_config(base, "no_lstm").model, f.name)
    }
    assert changed == {"recurrence"}


def test_paper_head_puts_the_papers_policy_on_the_digits_recipe():
    import os

    from rarl_tf.config.flags import experiment_config_from_flagfile

    root = ROOT
    base = experiment_config_from_flagfile(os.path.join(root, "digits.flags"))
    paper = variant_config(base, "paper_head").model
    head = {
        "loc_head": "dense",
        "reward": "top_n",
        "trajectories": 1,
        "policy_state": "lstm",
        "loc_hidden": 0,
        "inhibition_radius": 0.0,
    }
    assert {name: getattr(paper, name) for name in head} == head
    # Nothing else moves, whatever digits.flags's own policy is.
    changed = {
        f.name
        for f in dataclasses.fields(base.model)
        if getattr(base.model, f.name) != getattr(paper, f.name)
    }
    assert changed and changed <= set(head)
    model = build_model(dataclasses.replace(paper, backbone_widths=(8, 16)), 10, seed=0)
    assert (
        model.agent.policy.location_head.mean_head is not None
        and not model.agent.policy.reads_cells
    )


def test_single_region_places_one_box_per_iteration():
    config = variant_config(ExperimentConfig(model=tiny_model_config()), "single_region").model
    out = build_model(config, 10)(np.zeros((1, 32, 32, 3), np.float32))
    assert out["boxes"].shape == (1, 1, config.num_steps, 1, 4)


def test_no_lstm_has_no_lstm_and_localisation_only_scores_embeddings():
    base = ExperimentConfig(model=tiny_model_config(embed_dim=12, lstm_units=16))
    none = build_model(variant_config(base, "no_lstm").model, 10)
    assert not any("lstm" in w.path for w in none.weights)
    assert none.agent.policy.location_head.mean_head.kernel.shape == (
        12,
        2,
    )  # locations from the embeddings
    only = build_model(variant_config(base, "lstm_localisation_only").model, 10)
    assert only.agent.cls_head.kernel.shape == (12, 10)  # classifier independent of the LSTM
    assert only.agent.policy.location_head.mean_head.kernel.shape == (
        16,
        2,
    )  # the LSTM places the regions
    full = build_model(base.model, 10)
    assert full.agent.cls_head.kernel.shape == (16, 10)


def test_random_locations_ignore_the_policy_and_have_no_reinforce_term():
    config = variant_config(ExperimentConfig(model=tiny_model_config()), "random_locations")
    model = build_model(config.model, 10, seed=0)
    images = np.zeros((2, 32, 32, 3), np.float32)
    first, second = model(images)["locations"].numpy(), model(images)["locations"].numpy()
    assert not np.allclose(first, second)  # drawn afresh, even at inference
    assert np.abs(first).max() <= 1.0
    # The same image twice in a batch gets different centres: they do not come from the state.
    assert not np.allclose(first[0], first[1])
    np.testing.assert_array_equal(model(images, training=True)["log_probs"].numpy(), 0.0)


def test_box_iou_and_centres_by_hand():
    a = np.array([[0.0, 0.0, 0.5, 0.5]])
    b = np.array(
        [[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 1.0, 1.0], [0.0, 0.5, 0.5, 0.0]]
    )  # the last one is `a` mirrored (x1 > x2)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 0.0625 / 0.4375, 0.0, 1.0]])
    np.testing.assert_array_equal(centres_inside(a, b), [[True, True, False, True]])


def test_discovery_rates_count_objects_found_by_any_region():
    objects = [
        np.array([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]]),
        np.array([[0.1, 0.1, 0.3, 0.9]]),
        np.zeros((0, 4)),
    ]  # an image without objects adds nothing
    regions = [
        np.array(
            [
                [0.0, 0.0, 0.4, 0.45],  # IoU 0.89 with object 1
                [0.6, 0.6, 0.8, 0.8],
            ]
        ),  # centre inside object 2, IoU 0.16
        np.array([[0.0, 0.0, 0.05, 0.05]]),  # misses
        np.array([[0.0, 0.0, 1.0, 1.0]]),
    ]
    rates = discovery_rates(regions, objects)
    assert rates["objects"] == 3
    assert rates["iou50"] == pytest.approx(1 / 3)
    assert rates["centre_inside"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least one ground-truth object"):
        discovery_rates([np.zeros((1, 4))], [np.zeros((0, 4))])


def test_localisation_only_lstm_learns_from_reinforce_alone():
    config = variant_config(
        ExperimentConfig(model=tiny_model_config()), "lstm_localisation_only"
    ).model
    model = build_model(config, 10, seed=0)
    images, labels = next(iter(one_batch(config)))
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, training=True)
        terms = model.compute_terms(out, labels)
        cls, rl = tf.reduce_mean(terms["cls_loss"]), tf.reduce_mean(terms["reinforce_loss"])
    lstm = [w for w in model.trainable_weights if "lstm" in w.path]
    embed = [w for w in model.trainable_weights if "embed" in w.path]
    assert lstm and embed
    assert all(g is None for g in tape.gradient(cls, lstm))  # the classifier skips the LSTM
    assert all(g is not None for g in tape.gradient(rl, lstm))  # REINFORCE trains it
    assert all(g is None for g in tape.gradient(rl, embed))  # but not the trunk


# Two tiny trainings and their evaluation through the command (~23 s); the variants themselves
# are built and trained a step each above.
@pytest.mark.slow
def test_ablate_command_writes_runs_discovery_and_a_table(tmp_path):
    from entry_points import TINY, run

    out = tmp_path / "ablation.json"
    result = run(
        "tools.ablate",
        *TINY,
        "--epochs=1",
        "--num_steps=1",
        "--variants=rarl,random_locations,T=1",
        "--repeats=2",
        "--verbose=0",
        "--discovery_images=16",
        f"--work_dir={tmp_path / 'runs'}",
        f"--output={out}",
        data_dir=tmp_path / "tfds",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    rarl = results["variants"]["rarl"]
    assert [r["seed"] for r in rarl["runs"]] == [0, 1]
    assert rarl["summary"]["mAP"]["n"] == 2 and rarl["summary"]["mAP"]["std"] is not None
    for key in ("discovery_iou50", "discovery_centre_inside"):
        assert 0.0 <= rarl["runs"][0][key] <= 1.0, key
    assert rarl["runs"][0]["discovery_objects"] > 16  # several digits per canvas
    # --num_steps=1 makes T=1 the same experiment as rarl: its runs are reused, not retrained.
    assert results["variants"]["T=1"]["same_runs_as"] == "rarl"
    assert "| random_locations |" in results["markdown"]
    assert "| variant | mAP |" in result.stdout


def ablate_refused(tmp_path, variants: str) -> str:
    """`tools.ablate` on the tiny flags with `variants` into tmp_path/w, which must stop with a
    user error (exit 2); returns its stderr."""
    from entry_points import TINY, run

    result = run(
        "tools.ablate",
        *TINY,
        f"--variants={variants}",
        f"--work_dir={tmp_path / 'w'}",
        f"--output={tmp_path / 'a.json'}",
        data_dir=tmp_path / "tfds",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    return result.stderr


def test_ablate_refuses_an_unknown_variant_before_any_work(tmp_path):
    stderr = ablate_refused(tmp_path, "rarl,bogus")
    assert "--variants=rarl,bogus is not allowed: ['bogus'] unknown" in stderr
    assert not (tmp_path / "w").exists()


def test_ablate_refuses_a_folder_of_another_experiment_before_any_work(tmp_path):
    from rarl_tf.model_folder import save_config

    # A finished run of another configuration where the second variant's first run would go.
    other = tmp_path / "w" / "rarl" / "seed_0"
    save_config(ExperimentConfig(model=tiny_model_config(num_steps=3)), str(other))
    stderr = ablate_refused(tmp_path, "random_locations,rarl")
    assert f"{other} holds a run with a different configuration" in stderr
    assert not (tmp_path / "w" / "random_locations").exists()  # the first variant never started
