"""Paired comparison of two ablation variants over the seeds both ran, and the policy's
same-weights interventions over those seeds, as markdown tables.

    python -m tools.paired --a=results/ablation_rarl.json:rarl \
        --b=results/ablation_random_inhibited.json:random_inhibited --output=paired.json

Each --a / --b is `ABLATION_JSON:VARIANT` (a file written by `tools.ablate`; several files may
hold one variant's seeds: give the flag several times). Prints, per seed and as mean ± std
(sample std, n - 1), the test mAP of A and of B and A - B (the pairing: the same seed means the
same data order, initialisation and sampling stream where the variants share them), then A's
`tools.policy_report` rows (same weights: interventions on the state, inhibition on or off,
random centres) as mean ± std over its seeds, with the visited cells kept.
"""

from __future__ import annotations

import json

from absl import app, flags

from rarl_tf import atomic, cli
from rarl_tf.evaluation import tables
from tools.ablate import summarize

FLAGS = flags.FLAGS


def runs_by_seed(specs: list[str]) -> dict[int, dict]:
    """{seed: run} of `FILE:VARIANT` specs (later files win on a repeated seed)."""
    runs = {}
    for spec in specs:
        path, _, variant = spec.rpartition(":")
        if not path or not variant:
            raise ValueError(f"{spec!r} is not allowed: expected ABLATION_JSON:VARIANT")
        with open(path) as f:
            variants = json.load(f)["variants"]
        if variant not in variants:
            raise ValueError(f"{path} has no variant {variant!r}: it has {sorted(variants)}")
        runs.update({run["seed"]: run for run in variants[variant]["runs"]})
    return runs


def _text(stat: dict, scale: float = 100.0, signed: bool = False) -> str:
    text = f"{stat['mean'] * scale:{'+' if signed else ''}.2f}"
    return text + (f" ± {stat['std'] * scale:.2f}" if stat["std"] is not None else "")


def paired(a: dict, b: dict) -> dict:
    """mAP of A and B and A - B over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common: A has {sorted(a)}, B has {sorted(b)}")
    return {
        "seeds": seeds,
        "a": summarize(a[s]["mAP"] for s in seeds),
        "b": summarize(b[s]["mAP"] for s in seeds),
        "a_minus_b": summarize(a[s]["mAP"] - b[s]["mAP"] for s in seeds),
    }


def placements(runs: dict) -> dict:
    """Each same-weights placement of the runs' policy reports: mAP and cells kept, mean ± std."""
    reports = [run["policy_report"] for run in runs.values() if run.get("policy_report")]
    names = reports[0]["placements"] if reports else {}
    result = {}
    for name in names:
        rows = [r["placements"][name] for r in reports if name in r["placements"]]
        keys = ["mAP", "union_centre_inside"]
        for optional in ("classes_found", "cells_kept", "cells_kept_as_sets"):
            keys += [optional] if all(optional in row for row in rows) else []
        result[name] = {key: summarize([row[key] for row in rows]) for key in keys}
    return result


def differences(runs: dict) -> dict:
    """Each paired mAP difference of the runs' policy reports (same weights, same images):
    mean ± std over seeds, and each seed's 95 % bootstrap interval over images."""
    reports = [run["policy_report"] for run in runs.values() if run.get("policy_report")]
    names = reports[0].get("differences", {}) if reports else {}
    result = {}
    for name in names:
        seeds = [r["differences"][name] for r in reports if name in r.get("differences", {})]
        result[name] = {
            "difference": summarize([d["difference"] for d in seeds]),
            "intervals": [[d["low"], d["high"]] for d in seeds],
        }
    return result


def markdown(result: dict, names: tuple[str, str]) -> str:
    p = result["paired"]
    rows = [
        [f"seed {s}", f"{100 * x:.2f}", f"{100 * y:.2f}", f"{100 * (x - y):+.2f}"]
        for s, x, y in zip(p["seeds"], p["a"]["values"], p["b"]["values"])
    ]
    rows.append(["mean ± std", _text(p["a"]), _text(p["b"]), _text(p["a_minus_b"], signed=True)])
    parts = [tables.markdown_table(("", *names, "A − B"), rows)]
    if result["placements"]:
        parts.append(placements_table(result["placements"], names[0]))
    if result.get("differences"):
        parts.append(
            tables.markdown_table(
                (
                    f"{names[0]}, same weights",
                    "mAP difference",
                    "95 % interval over images, each seed",
                ),
                [
                    [
                        name,
                        _text(d["difference"], signed=True),
                        "; ".join(
                            f"[{100 * lo:+.2f}, {100 * hi:+.2f}]" for lo, hi in d["intervals"]
                        ),
                    ]
                    for name, d in result["differences"].items()
                ],
            )
        )
    return "\n\n".join(parts)


def placements_table(placements_: dict, name: str) -> str:
    def cell(row, key):
        return _text(row[key]) if key in row else "-"

    return tables.markdown_table(
        (
            f"{name}, same weights",
            "mAP",
            "classes found per image",
            "centre inside, union",
            "visited cells kept",
            "visited cells kept, as sets",
        ),
        [
            [n, _text(r["mAP"])]
            + [cell(r, k) for k in ("classes_found", "union_centre_inside", "cells_kept")]
            + [cell(r, "cells_kept_as_sets")]
            for n, r in placements_.items()
        ],
    )


def main(argv):
    cli.no_arguments(argv)
    a, b = runs_by_seed(FLAGS.a), runs_by_seed(FLAGS.b)
    names = (FLAGS.a[0].rpartition(":")[2], FLAGS.b[0].rpartition(":")[2])
    result = {
        "a": FLAGS.a,
        "b": FLAGS.b,
        "paired": paired(a, b),
        "placements": placements(a),
        "differences": differences(a),
    }
    result["markdown"] = markdown(result, names)
    if FLAGS.output:
        atomic.write_json(FLAGS.output, result)
    print(result["markdown"])


if __name__ == "__main__":
    flags.DEFINE_multi_string("a", [], "ABLATION_JSON:VARIANT of A (repeatable).")
    flags.DEFINE_multi_string("b", [], "ABLATION_JSON:VARIANT of B (repeatable).")
    flags.DEFINE_string("output", None, "JSON path for the result (optional).")
    app.run(cli.user_errors_exit(main), flags_parser=cli.parse_flags)
