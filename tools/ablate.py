"""The paper's ablations (Tables 3-6) and a global-pooling baseline, trained side by side.

    python -m tools.ablate --flagfile=digits.flags --output=ablation.json
    python -m tools.ablate --flagfile=digits.flags --epochs=3 --repeats=2 --output=ablation.json

Every variant trains with the same backbone, budget (the flagfile's) and seed (seed + r for
repeat r), on the same data, then is evaluated with the flagfile's views. On cluttered_digits,
where every digit's box is known, `rarl` and `random_locations` also get an object-discovery
score (`rarl_tf/evaluation/discovery.py`). Runs live under --work_dir/VARIANT/seed_S and resume like
`rarl_tf.train`; the JSON is rewritten after every run, with a markdown table next to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import app, flags

from rarl_tf import atomic, cli, model_folder
from rarl_tf.config import flags as rarl_flags
from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.evaluation import tables

FLAGS = flags.FLAGS

# name -> (ModelConfig changes, or a function of the base ModelConfig; the paper's row).
VARIANTS = {
    "rarl": ({}, "Ours-C 91.3 (Table 4, ten views); attention 90.2 (Table 3, one view)"),
    "global": ({"architecture": "global"}, "VeryDeep 89.7 (Table 1, VGG16 global features)"),
    "random_locations": ({"locations": "random"}, "random 89.0 (Table 3, one view)"),
    # Random centres with the inhibition of return of the recipe (0.3 where it has none): what
    # coverage alone gives, without aim.
    "random_inhibited": (
        lambda m: {
            "locations": "random_inhibited",
            "inhibition_radius": m.inhibition_radius or 0.3,
        },
        "- (not in the paper)",
    ),
    # The policy without a state: a saliency map of the view plus inhibition of return.
    "saliency_inhibition": (
        lambda m: {
            "loc_head": "spatial" if m.loc_head == "dense" else m.loc_head,
            "policy_state": "none",
            "inhibition_radius": m.inhibition_radius or 0.3,
        },
        "- (not in the paper)",
    ),
    # The paper's location head on the recipe's trunk: FC(h_t) -> a Normal's mean, eq. 5's
    # top-n reward, one trajectory (no leave-one-out baseline), no own state or inhibition.
    "paper_head": (
        {
            "loc_head": "dense",
            "reward": "top_n",
            "trajectories": 1,
            "policy_state": "lstm",
            "inhibition_radius": 0.0,
            "loc_hidden": 0,
        },
        "the paper's head (Ours-C's policy)",
    ),
    # The paper's single region is 224 px at N = 512; the same fraction of N here.
    "single_region": (
        lambda m: {"anchor_sizes": (round(224 / 512 * m.image_size),), "aspect_ratios": (1.0,)},
        "single region 90.9 (Table 5)",
    ),
    "T=1": ({"num_steps": 1}, "T = 1: 90.9 (Table 6)"),
    "T=5": ({"num_steps": 5}, "T = 5: 91.3 (Table 6)"),
    "T=10": ({"num_steps": 10}, "T = 10: 91.3 (Table 6)"),
    "lstm_localisation_only": ({"recurrence": "localisation_only"}, "Ours-B 90.0 (Table 4)"),
    "no_lstm": ({"recurrence": "none"}, "Ours-A 89.6 (Table 4)"),
}
DISCOVERY_VARIANTS = (
    "rarl",
    "random_locations",
    "random_inhibited",
    "saliency_inhibition",
    "paper_head",
)


def variant_config(base, name: str):
    """`base` (an ExperimentConfig) with variant `name`'s model changes."""
    changes, _ = VARIANTS[name]
    changes = changes(base.model) if callable(changes) else changes
    return dataclasses.replace(base, model=dataclasses.replace(base.model, **changes))


def summarize(values):
    import numpy as np

    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "n": len(values),
        "values": values,
    }


MARKDOWN_HEADER = (
    "variant",
    "mAP",
    "CF1",
    "OF1",
    "discovered, IoU >= 0.5",
    "discovered, centre inside",
    "same weights: learned − random centres (mAP)",
    "same weights: learned − random inhibited centres (mAP)",
    "train min / run",
    "paper (VOC07 mAP)",
)


def _mean_and_std(stat, scale=100) -> str:
    if not stat:
        return "-"
    text = f"{stat['mean'] * scale:.1f}"
    return text + (f" ± {stat['std'] * scale:.1f}" if stat["std"] is not None else "")


def markdown(results: dict) -> str:
    """One row per variant: mean ± std over its runs, in % (`tables.markdown_table`)."""
    rows = []
    for name, entry in results["variants"].items():
        s = entry["summary"]
        minutes = s["train_seconds"]["mean"] / 60 if s.get("train_seconds") else None
        if "same_runs_as" in entry:
            name = f"{name} (the {entry['same_runs_as']} runs)"
        stats = [
            _mean_and_std(s.get(key))
            for key in (
                "mAP",
                "CF1",
                "OF1",
                "discovery_iou50",
                "discovery_centre_inside",
                "learned_minus_random_mAP",
                "learned_minus_random_inhibited_mAP",
            )
        ]
        rows.append([name, *stats, "-" if minutes is None else f"{minutes:.1f}", entry["paper"]])
    return tables.markdown_table(MARKDOWN_HEADER, rows)


def main(argv):
    cli.no_arguments(argv)
    base = rarl_flags.experiment_config_from_flags()
    names = FLAGS.variants
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(
            f"--variants={','.join(names)} is not allowed: {unknown} unknown; "
            f"expected names from {list(VARIANTS)}"
        )
    if FLAGS.repeats < 1:
        raise ValueError(f"--repeats={FLAGS.repeats} is not allowed: expected an integer >= 1")
    for name in names:
        variant_config(base, name).validate()
        # A folder of another experiment would stop the run at its variant, maybe hours in.
        for _, run_config, model_dir in variant_runs(name, variant_config(base, name)):
            model_folder.check_resumes(run_config, model_dir)
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    out_dir = os.path.dirname(os.path.abspath(FLAGS.output))
    os.makedirs(out_dir, exist_ok=True)

    digits = base.data.dataset.startswith("cluttered_digits")
    results = {"base_config": dataclasses.asdict(base), "repeats": FLAGS.repeats, "variants": {}}
    trained = {}  # config -> variant name, so e.g. T=5 reuses rarl's runs when T is 5
    for name in names:
        config = variant_config(base, name)
        if config in trained:
            same = results["variants"][trained[config]]
            results["variants"][name] = {
                **same,
                "paper": VARIANTS[name][1],
                "same_runs_as": trained[config],
            }
        else:
            trained[config] = name
            results["variants"][name] = run_variant(name, config, digits)
        results["markdown"] = markdown(results)
        # Rewritten whole after each variant: an interrupted run keeps the variants it finished.
        atomic.write_json(FLAGS.output, results)
    print(results["markdown"])


def variant_runs(name: str, config) -> list[tuple[int, ExperimentConfig, str]]:
    """(seed, config, model folder) of each of --repeats runs of variant `name`."""
    runs = []
    for repeat in range(FLAGS.repeats):
        seed = config.train.seed + repeat
        run_config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
        runs.append(
            (seed, run_config, os.path.join(FLAGS.work_dir, name.replace("=", ""), f"seed_{seed}"))
        )
    return runs


def run_variant(name: str, config, digits: bool) -> dict:
    """Trains and evaluates `config` --repeats times; {"paper", "runs", "summary"}."""
    from rarl_tf.data.splits import Splits
    from rarl_tf.evaluation import scoring
    from rarl_tf.evaluation.policy_report import policy_report
    from rarl_tf.training import trainer

    runs = []
    for seed, run_config, model_dir in variant_runs(name, config):
        print(f"== {name}, seed {seed}: {model_dir}", flush=True)
        start = time.time()
        splits = Splits(run_config)  # the scoring reads the attention pictures' load
        model, saved = trainer.train(run_config, model_dir, verbose=FLAGS.verbose, splits=splits)
        train_seconds = time.time() - start
        metrics = scoring.evaluate(model, saved, splits.eval)
        run = {
            "seed": seed,
            "model_dir": model_dir,
            "train_seconds": train_seconds,
            **{k: metrics[k] for k in ("mAP", *tables.PRF_KEYS)},
        }
        if digits and name in DISCOVERY_VARIANTS:
            # The same weights with the policy's locations and with random centres.
            measured = policy_report(model, saved, FLAGS.discovery_images)
            run.update(
                discovery_iou50=measured["policy"]["union_iou50"],
                discovery_centre_inside=measured["policy"]["union_centre_inside"],
                discovery_objects=measured["policy"]["objects"],
                same_weights_random_mAP=measured["random"]["mAP"],
                same_weights_random_centre_inside=measured["random"]["union_centre_inside"],
                learned_minus_random_mAP=measured["learned_minus_random_mAP"],
                learned_minus_random_inhibited_mAP=measured["learned_minus_random_inhibited_mAP"],
                policy_report=measured,
            )
        runs.append(run)
        print(json.dumps(run), flush=True)
    keys = (
        "mAP",
        "CF1",
        "OF1",
        "discovery_iou50",
        "discovery_centre_inside",
        "train_seconds",
        "learned_minus_random_mAP",
        "learned_minus_random_inhibited_mAP",
        "same_weights_random_centre_inside",
    )
    return {
        "paper": VARIANTS[name][1],
        "runs": runs,
        "summary": {k: summarize([r.get(k) for r in runs]) for k in keys},
    }


if __name__ == "__main__":
    rarl_flags.define_experiment_flags()
    flags.DEFINE_list("variants", list(VARIANTS), f"Variants to run, from {list(VARIANTS)}.")
    flags.DEFINE_integer("repeats", 1, "Runs per variant, with seeds seed, seed + 1, ...")
    flags.DEFINE_string("work_dir", "runs/ablate", "Where the runs are trained (resumable).")
    flags.DEFINE_string("output", "ablation.json", "JSON results (with a markdown table).")
    flags.DEFINE_integer("discovery_images", 512, "Test images for the discovery score.")
    flags.DEFINE_integer("verbose", 2, "Keras verbosity while training (0, 1 or 2).")
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
