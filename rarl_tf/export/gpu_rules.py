"""GPU rule checks of a `.tflite` flatbuffer, op by op, under two rule sets:

* "classic": the classic TFLite GPU delegate (`tflite/delegates/gpu`), the one Android's
  `GpuDelegateV2` uses (rarl_tf/export/gpu_rules_classic.py). It cannot run on this machine, so its
  verdict stays a prediction.
* "ml_drift": ML Drift, the GPU backend of ai-edge-litert's `CompiledModel` accelerator
  (rarl_tf/export/gpu_rules_mldrift.py). It runs here on a software Vulkan device
  (tools/swiftshader.py), so its verdict can be, and should be, checked against a run
  (tools/gpu_check.py).

`tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` in TF 2.21 reports "looks
compatible" whatever the model holds, hence these re-implementations. Each op gets three kinds
of verdict: refused (its own check fails: it falls back to the CPU), a build failure (taken,
then its `Parse` fails: the whole delegate fails and the model runs on the CPU), and
miscomputed (taken and computed wrong, by a kernel limit or as seen on the real accelerator).
A rule check is a prediction from the graph; only a run on the device is evidence.

Both rule sets run the checks under `FP16GraphPartitionHelper` (tflite/delegates/utils.cc in
google-ai-edge/LiteRT, commit 38ee59721b37a8aa2dc9abadcc43c0cbd8dbb3d3): a DEQUANTIZE of a
constant float16 weight is not taken by itself, its consumers are checked as if they read the
constant, and the DEQUANTIZE ops join the GPU only when every other op is taken; otherwise they
all stay on the CPU. The partitioning follows `PartitionGraphIntoIndependentNodeSubsets`
(rarl_tf/export/tflite_graph.partition); the delegate takes the largest `max_delegated_partitions`
(default 1) blocks.

Usage:
    report = check_model(open("rarl.tflite", "rb").read(), rules="ml_drift")
    print(report.summary())
    for line in report.problem_lines(): print(line)

    python -m rarl_tf.export.gpu_rules FILE.tflite [--rules=classic|ml_drift|both]
        # prints each summary and problem; exit 1 unless every rule set takes the whole
        # model, builds and computes it right (as far as the rules can tell)
"""

from __future__ import annotations

import collections
import dataclasses
import sys

from rarl_tf.export import gpu_rules_classic, gpu_rules_mldrift
from rarl_tf.export.tflite_graph import (  # noqa: F401
    BOOL,
    FLOAT16,
    FLOAT32,
    INT8,
    INT32,
    INT64,
    UINT8,
    OpInfo,
    TensorInfo,
    partition,
    read_model,
)


@dataclasses.dataclass(frozen=True)
class RuleSet:
    name: str
    title: str
    module: object
    caveat: str


RULE_SETS = {
    "classic": RuleSet(
        "classic",
        "classic TFLite GPU delegate (tflite/delegates/gpu, Android GpuDelegateV2; "
        "model_builder.cc / gpu_compatibility.cc)",
        gpu_rules_classic,
        "a prediction from the rules only: this delegate cannot run on this machine",
    ),
    "ml_drift": RuleSet(
        "ml_drift",
        "ML Drift (ai-edge-litert CompiledModel GPU accelerator; "
        "ml_drift_delegate/tflite/support*.cc)",
        gpu_rules_mldrift,
        "a prediction from the rules; only a run on the device (tools/gpu_check.py) is evidence",
    ),
}


def _lines(ops, verdicts: dict, label: str) -> list[str]:
    return [
        f"op {i} {ops[i].name} (v{ops[i].version}, inputs "
        f"{', '.join(t.describe() for t in ops[i].inputs if t is not None)}): "
        f"{label}{'; '.join(verdicts[i])}"
        for i in sorted(verdicts)
    ]


@dataclasses.dataclass
class Report:
    ops: list  # OpInfo, execution order
    reasons: dict  # op index -> [reason, ...] for each op that falls back
    partitions: list  # [[op index, ...], ...]: the blocks of GPU ops, in graph order
    max_delegated_partitions: int = 1
    rules: RuleSet = RULE_SETS["classic"]
    fatal: dict = dataclasses.field(default_factory=dict)  # op -> why building fails
    wrong: dict = dataclasses.field(default_factory=dict)  # op -> why it computes wrong

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @property
    def fallbacks(self) -> list:
        return sorted(self.reasons)

    def delegated(self) -> list:
        """Op indices the delegate would take: the largest `max_delegated_partitions` blocks,
        or none when building the delegate would fail."""
        if self.fatal:
            return []
        ranked = sorted(self.partitions, key=len, reverse=True)
        return sorted(i for block in ranked[: self.max_delegated_partitions] for i in block)

    @property
    def fully_delegated(self) -> bool:
        return (
            not self.reasons
            and not self.fatal
            and len(self.partitions) == 1
            and len(self.delegated()) == len(self.ops)
        )

    @property
    def ok(self) -> bool:
        """Whole model taken, delegate built, nothing known to compute wrong."""
        return self.fully_delegated and not self.wrong

    def op_counts(self) -> dict:
        return dict(sorted(collections.Counter(op.name for op in self.ops).items()))

    def fallback_lines(self) -> list[str]:
        """One line per op that would fall back to the CPU, naming it and why."""
        return _lines(self.ops, self.reasons, "")

    def problem_lines(self) -> list[str]:
        """Fallbacks, build failures and ops known to compute wrong, one line each."""
        return (
            _lines(self.ops, self.fatal, "delegate build fails: ")
            + self.fallback_lines()
            + _lines(self.ops, self.wrong, "computed wrong: ")
        )

    def summary(self) -> str:
        taken = len(self.delegated())
        share = 100.0 * taken / max(self.num_ops, 1)
        sizes = sorted((len(p) for p in self.partitions), reverse=True)
        text = (
            f"{self.rules.title}: {self.num_ops} ops of {len(self.op_counts())} kinds, "
            f"{len(self.reasons)} would fall back to the CPU; {len(self.partitions)} GPU "
            f"partition(s) {sizes if len(sizes) <= 8 else sizes[:8] + ['...']}; the "
            f"delegate (max_delegated_partitions={self.max_delegated_partitions}) takes "
            f"{taken} of {self.num_ops} ops ({share:.1f} %)"
        )
        if self.fatal:
            text += (
                f"; building the delegate would FAIL on {len(self.fatal)} op(s), so the "
                f"whole model would run on the CPU"
            )
        if self.wrong:
            text += f"; {len(self.wrong)} taken op(s) would be computed WRONG"
        return f"{text} [{self.rules.caveat}]"

    def as_dict(self) -> dict:
        return {
            "rules": self.rules.name,
            "prediction": self.rules.caveat,
            "num_ops": self.num_ops,
            "op_counts": self.op_counts(),
            "fallbacks": [
                {"index": i, "op": self.ops[i].name, "reasons": self.reasons[i]}
                for i in self.fallbacks
            ],
            "build_failures": {i: v for i, v in sorted(self.fatal.items())},
            "computed_wrong": {i: v for i, v in sorted(self.wrong.items())},
            "partitions": [len(p) for p in self.partitions],
            "delegated_ops": len(self.delegated()),
            "fully_delegated": self.fully_delegated,
            "ok": self.ok,
        }


def is_fp16_weight_dequantize(op: OpInfo) -> bool:
    """A DEQUANTIZE of a constant float16 weight (float16 quantization)."""
    return (
        op.name == "DEQUANTIZE"
        and op.inputs[0] is not None
        and op.inputs[0].is_const
        and op.inputs[0].type == FLOAT16
    )


def _refusals(graph, module, allow_quant_ops: bool) -> dict:
    """{op: reasons} under FP16GraphPartitionHelper: float16 weight DEQUANTIZE ops are set
    aside, their outputs read as the constants they are; they stay on the CPU unless every
    other op is taken (its Scenario 1, full delegation)."""
    dequantizes = [op for op in graph.ops if is_fp16_weight_dequantize(op)]
    for op in dequantizes:
        op.outputs[0].is_const = True
    reasons = {}
    for op in graph.ops:
        why = [] if op in dequantizes else module.refusals(op, graph, allow_quant_ops)
        if why:
            reasons[op.index] = why
    if reasons:
        for op in dequantizes:
            reasons[op.index] = [
                "float16 weight DEQUANTIZE: FP16GraphPartitionHelper keeps "
                "these on the CPU unless it takes every other op"
            ]
    return reasons


def check_graph(
    graph, rules: str = "classic", max_delegated_partitions: int = 1, allow_quant_ops: bool = True
) -> Report:
    if rules not in RULE_SETS:
        raise ValueError(
            f"rules={rules!r} is not a rule set: expected one of {', '.join(RULE_SETS)}"
        )
    rule_set = RULE_SETS[rules]
    module = rule_set.module
    reasons = _refusals(graph, module, allow_quant_ops)
    blocks = partition(graph, [op.index not in reasons for op in graph.ops])
    report = Report(
        graph.ops,
        reasons,
        [members for kind, members in blocks if kind],
        max_delegated_partitions,
        rule_set,
    )
    taken = [graph.ops[i] for i in report.delegated()]
    report.fatal = {op.index: why for op in taken if (why := module.build_failures(op, graph))}
    report.wrong = {op.index: why for op in taken if (why := module.miscomputed(op, graph))}
    return report


def check_model(
    content: bytes,
    rules: str = "classic",
    max_delegated_partitions: int = 1,
    allow_quant_ops: bool = True,
) -> Report:
    """Applies one rule set ("classic" or "ml_drift") to every op of the first subgraph."""
    return check_graph(read_model(content), rules, max_delegated_partitions, allow_quant_ops)


def check_op(op: OpInfo, graph, rules: str = "classic", allow_quant_ops: bool = True) -> dict:
    """One op's verdicts: {"refused": [...], "build_failure": [...], "wrong": [...]}."""
    module = RULE_SETS[rules].module
    return {
        "refused": module.refusals(op, graph, allow_quant_ops),
        "build_failure": module.build_failures(op, graph),
        "wrong": module.miscomputed(op, graph),
    }


def _parse_args(argv) -> tuple[str, list] | None:
    names = {"both": list(RULE_SETS), **{name: [name] for name in RULE_SETS}}
    paths, chosen = [], "both"
    for arg in argv[1:]:
        if arg.startswith("--rules="):
            chosen = arg.split("=", 1)[1]
        else:
            paths.append(arg)
    if len(paths) != 1 or chosen not in names:
        return None
    return paths[0], names[chosen]


def main(argv) -> int:
    parsed = _parse_args(argv)
    if parsed is None:
        print(
            f"usage: python -m rarl_tf.export.gpu_rules FILE.tflite "
            f"[--rules={'|'.join(RULE_SETS)}|both]",
            file=sys.stderr,
        )
        return 2
    path, names = parsed
    with open(path, "rb") as f:
        content = f.read()
    reports = [check_model(content, name) for name in names]
    for report in reports:
        print(report.summary())
        for line in report.problem_lines():
            print(f"  {line}")
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
