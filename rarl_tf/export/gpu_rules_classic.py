"""The classic TFLite GPU delegate's rules (`tflite/delegates/gpu`, Android's `GpuDelegateV2`),
op by op. It cannot run on this machine: what these rules say is a prediction.

Read from google-ai-edge/LiteRT (commits are those of the files as read; the delegate in
ai-edge-litert 2.3 is built from this tree):

* `tflite/delegates/gpu/common/model_builder.cc` (commit
  34ec5badbbbfd4d2147d1362f299f58843f84dfc): the op parsers (`NewOperationParser`: an op
  without one is not supported), each parser's `IsSupported` (`CheckMaxSupportedOpVersion`,
  the comparison-consumer rule of `ElementwiseOperationParser`, the bool-CAST rule of
  `CastOperationParser`), `GetOpsToReplace` / `IsAllAllowedTensors` (no tensor of rank >= 5;
  runtime tensors float32 or float16 with per-op exceptions), and each parser's `Parse`, which
  runs only when the delegate is built: an error there fails the whole delegate (the model then
  runs on the CPU), it is not an op falling back (`build_failures`).
  `ParseInputsWithConstTensorImpl` reads a constant operand of a two-input op as a scalar, a
  per-channel vector (all dims but the last 1), or else as an HWC tensor laid over the runtime
  tensor's own coordinates, with no broadcast (`miscomputed`).
* `tflite/tools/versioning/gpu_compatibility.cc` (commit
  007226f498a6fa5204b1127a59d647857a09ceaf; the SELECT_V2 rule is the same at
  d6d8577b91f685d69859106d4340c57221c8413b): `CheckGpuDelegateCompatibility`, the per-op
  checks (runtime/constant input counts, STRIDED_SLICE masks and rank, CAST types, ADD/MUL
  broadcasting in the default `kStandard` mode, SELECT_V2 shapes, ADD_N, reduction axes, ...).
* `tflite/delegates/gpu/common/model_builder_helper.cc` `ExtractTensorShape` (same tree): a
  runtime tensor of rank 0 has no BHWC layout ("has bad input dims size: 0"), a build failure.
* `tflite/delegates/gpu/common/selectors/operation_selector.cc` (the BATCHED_MATMUL kernel):
  the right-hand side becomes the weights of a 1x1 convolution, one matrix for the whole batch,
  so only a runtime right-hand side shaped [1, I, O] (or [1, 1, I, O]) computes a product;
  `gpu_compatibility.cc` accepts any BATCH_MATMUL, this module holds it to the kernel's shape.
* `tflite/delegates/utils.cc` `FP16GraphPartitionHelper` (commit
  38ee59721b37a8aa2dc9abadcc43c0cbd8dbb3d3): see rarl_tf/export/gpu_rules.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rarl_tf.export.tflite_graph import (
    BOOL,
    FLOAT32,
    FLOATS,
    INT8,
    INT32,
    TYPE_NAMES,
    UINT8,
    Graph,
    OpInfo,
)

# Ops with a parser in `NewOperationParser` and the highest version the parser takes
# (`CheckMaxSupportedOpVersion`; None: the parser does not check the version).
# DEQUANTIZE and QUANTIZE have a parser only when quantized ops are allowed.
MAX_VERSION = {
    "ABS": 2,
    "ADD": 2,
    "ADD_N": 2,
    "AVERAGE_POOL_2D": 2,
    "BATCH_MATMUL": None,
    "CAST": None,
    "CONCATENATION": 2,
    "CONV_2D": 6,
    "COS": 2,
    "CUMSUM": 1,
    "DENSIFY": 1,
    "DEPTHWISE_CONV_2D": 6,
    "DEPTH_TO_SPACE": None,
    "DEQUANTIZE": 3,
    "DIV": 2,
    "EQUAL": 2,
    "ELU": 2,
    "EXP": 2,
    "FLOOR": 2,
    "FLOOR_DIV": 2,
    "FLOOR_MOD": 2,
    "FULLY_CONNECTED": 9,
    "GATHER": 1,
    "GELU": 2,
    "GREATER": 2,
    "GREATER_EQUAL": 2,
    "HARD_SWISH": None,
    "LESS": 2,
    "LESS_EQUAL": 2,
    "LOGISTIC": 2,
    "LOG": 2,
    "LOGICAL_AND": 2,
    "LSTM": 4,
    "MAXIMUM": 2,
    "MAX_POOL_2D": 2,
    "MEAN": None,
    "MINIMUM": 2,
    "MIRROR_PAD": 2,
    "MUL": 3,
    "NEG": 2,
    "NOT_EQUAL": 2,
    "ONE_HOT": 1,
    "PACK": None,
    "PAD": 2,
    "PADV2": 2,
    "POW": 2,
    "REDUCE_MAX": None,
    "REDUCE_MIN": None,
    "REDUCE_PROD": None,
    "QUANTIZE": 2,
    "RELU": 2,
    "RELU6": 2,
    "RELU_0_TO_1": 2,
    "RELU_N1_TO_1": 2,
    "LEAKY_RELU": 2,
    "PRELU": 1,
    "RESHAPE": 1,
    "RESIZE_BILINEAR": 3,
    "RESIZE_NEAREST_NEIGHBOR": 3,
    "RSQRT": 2,
    "SELECT": 1,
    "SELECT_V2": 1,
    "SIGN": 2,
    "SIN": 2,
    "SLICE": 2,
    "SOFTMAX": 2,
    "SPACE_TO_DEPTH": 2,
    "SPLIT": None,
    "SPLIT_V": None,
    "SQRT": 2,
    "SQUARE": 2,
    "SQUARED_DIFFERENCE": 2,
    "STRIDED_SLICE": 4,
    "SUB": 2,
    "SUM": None,
    "TANH": 2,
    "TILE": None,
    "TRANSPOSE": 4,
    "TRANSPOSE_CONV": 3,
    "UNPACK": None,
}
QUANT_OPS = ("QUANTIZE", "DEQUANTIZE")
COMPARISONS = ("GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL")
ONE_INPUT = (
    "ABS",
    "COS",
    "ELU",
    "EXP",
    "FLOOR",
    "GELU",
    "LOG",
    "LOGISTIC",
    "NEG",
    "RSQRT",
    "SIGN",
    "SIN",
    "SQRT",
    "SQUARE",
    "TANH",
)
TWO_INPUT = (
    "DIV",
    "EQUAL",
    "FLOOR_DIV",
    "FLOOR_MOD",
    "GREATER",
    "GREATER_EQUAL",
    "LOGICAL_AND",
    "LESS",
    "LESS_EQUAL",
    "MAXIMUM",
    "MINIMUM",
    "NOT_EQUAL",
    "POW",
    "SQUARED_DIFFERENCE",
    "SUB",
)
# Two-input ops whose parser reads a constant operand by ParseInputsWithConstTensorImpl.
ELEMENTWISE_TWO = TWO_INPUT + ("ADD", "MUL")
REDUCTIONS = ("REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SUM", "MEAN")
# Fused activations the delegate implements (IsActivationSupported): NONE, RELU,
# RELU_N1_TO_1, RELU6, TANH, and SIGMOID; not SIGN_BIT (5).
UNSUPPORTED_ACTIVATIONS = {5: "SIGN_BIT"}


def _broadcast_ok(a, b) -> bool:
    """CheckAddMulBroadcastCompatibility in the delegate's default (kStandard) mode."""
    if a.rank > 1 and b.rank > 1 and a.rank != b.rank:
        longer, shorter = (a.shape, b.shape) if a.rank >= b.rank else (b.shape, a.shape)
        if len(longer) == 4 and len(shorter) == 3 and longer[0] == 1:
            return True
        if len(longer) == 4 and len(shorter) == 2 and longer[0] == 1 and tuple(shorter) == (1, 1):
            return True
        if (
            len(longer) == 4
            and len(shorter) == 2
            and longer[0] == shorter[0]
            and longer[3] == shorter[1]
        ):
            return True
        return False
    return True


def activation_rules(op) -> list[str]:
    act = getattr(op.options, "fusedActivationFunction", 0) or 0
    return (
        [f"fused activation {UNSUPPORTED_ACTIVATIONS[act]} is not supported"]
        if act in UNSUPPORTED_ACTIVATIONS
        else []
    )


def _comparison_rules(op, graph) -> list[str]:
    # ElementwiseOperationParser::IsSupported: a logical op is accepted only when its output
    # has one producer and one consumer, a CAST / SELECT / SELECT_V2 with float output.
    users = graph.users(op.outputs[0])
    if len(users) != 1:
        return [
            f"comparison output has {len(users)} consumers; the delegate needs exactly "
            f"one CAST/SELECT/SELECT_V2 with float output"
        ]
    user = graph.ops[users[0]]
    if user.name not in ("CAST", "SELECT", "SELECT_V2") or user.outputs[0].type not in FLOATS:
        return [
            f"comparison feeds {user.name} -> "
            f"{TYPE_NAMES.get(user.outputs[0].type)}; the delegate needs its single "
            f"consumer to be CAST/SELECT/SELECT_V2 with float output"
        ]
    return []


def _bool_cast_rules(op, graph) -> list[str] | None:
    """CastOperationParser for bool -> float: logical_op -> bool tensor -> CAST -> float, the
    cast's output consumed by exactly one op (a graph output cast is done on the CPU). None:
    the cast is none of these, and the general CAST rules decide."""
    produced = graph.producers.get(op.inputs[0].index)
    if produced is None or len(graph.users(op.inputs[0])) != 1:
        return ["bool CAST whose input is not a single-use comparison"]
    if len(graph.users(op.outputs[0])) != 1:
        return [
            "bool CAST whose output is not consumed by exactly one op (a model "
            "output cast from bool runs on the CPU)"
        ]
    if graph.ops[produced].name in COMPARISONS:
        return []
    return None


def _cast_rules(op, graph) -> list[str]:
    src, dst = op.inputs[0].type, op.outputs[0].type
    if src == BOOL and dst in FLOATS:
        decided = _bool_cast_rules(op, graph)
        if decided is not None:
            return decided
    reasons = []
    ok = (
        (src == BOOL and dst in FLOATS)
        or (src in FLOATS and dst == BOOL)
        or (src in (FLOAT32, INT32) and dst in (FLOAT32, INT32))
    )
    if not ok:
        reasons.append(f"CAST {TYPE_NAMES.get(src)} -> {TYPE_NAMES.get(dst)} is not supported")
    runtime, _ = op.counts()
    if runtime != 1:
        reasons.append(f"expected 1 runtime input, got {runtime}")
    return reasons


def _add_mul_rules(op, graph) -> list[str]:
    if len(op.inputs) != 2:
        return [f"{op.name} requires two input tensors"]
    reasons = []
    a, b = op.inputs
    if (op.name == "ADD" or a.rank != b.rank) and not _broadcast_ok(a, b):
        reasons.append(f"broadcast {list(a.shape)} with {list(b.shape)} is not supported")
    if op.counts()[0] == 0:
        reasons.append("no runtime input")
    return reasons + activation_rules(op)


def _add_n_rules(op, graph) -> list[str]:
    if len(op.inputs) != 2:
        return [f"ADD_N with {len(op.inputs)} inputs: the delegate takes exactly 2"]
    return []


def _one_input_rules(op, graph) -> list[str]:
    runtime, const = op.counts()
    if runtime != 1 or const != 0:
        return [f"needs 1 runtime and 0 constant inputs, has {runtime} and {const}"]
    return []


def _two_input_rules(op, graph) -> list[str]:
    runtime, const = op.counts()
    reasons = []
    if not ((runtime == 2 and const == 0) or (runtime == 1 and const == 1)):
        reasons.append(
            f"needs 2 runtime inputs or 1 runtime and 1 constant, has {runtime} and {const}"
        )
    return reasons + activation_rules(op)


def _batch_matmul_rules(op, graph) -> list[str]:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return ["expected 2 inputs and 1 output"]
    reasons = []
    rhs = op.inputs[1]
    if getattr(op.options, "adjX", False) or getattr(op.options, "adjY", False):
        reasons.append("adj_x/adj_y: the GPU kernel ignores them")
    if not rhs.is_const and not (
        (rhs.rank == 3 and rhs.shape[0] == 1)
        or (rhs.rank == 4 and rhs.shape[0] == 1 and rhs.shape[1] == 1)
    ):
        reasons.append(
            f"runtime right-hand side {list(rhs.shape)}: the GPU kernel uses it "
            f"as the [1, I, O] weights of a 1x1 convolution shared by the batch"
        )
    return reasons


def _concatenation_rules(op, graph) -> list[str]:
    outs = op.outputs[0]
    axis = (getattr(op.options, "axis", 0) or 0) % max(outs.rank, 1)
    reasons = []
    for t in op.inputs:
        if t is None:
            continue
        if t.rank != outs.rank or any(
            d != e for k, (d, e) in enumerate(zip(t.shape, outs.shape)) if k != axis
        ):
            reasons.append(
                f"input {list(t.shape)} differs from output {list(outs.shape)} off the concat axis"
            )
    return reasons + activation_rules(op)


def _no_rules(op, graph) -> list[str]:
    return []


def _positive_fields(op, fields) -> list[str]:
    return [f"{field} <= 0" for field in fields if (getattr(op.options, field, 1) or 0) <= 0]


def _conv_rules(op, graph) -> list[str]:
    runtime, _ = op.counts()
    reasons = []
    if runtime > 2:
        reasons.append(f"expected 1 or 2 runtime inputs, got {runtime}")
    reasons += _positive_fields(op, ("strideH", "strideW", "dilationHFactor", "dilationWFactor"))
    if op.name == "DEPTHWISE_CONV_2D" and any(
        t.rank != 4 for t in (op.inputs[0], op.inputs[1], op.outputs[0])
    ):
        reasons.append("input, filter and output must be 4-D")
    return reasons + activation_rules(op)


def _fully_connected_rules(op, graph) -> list[str]:
    o, reasons = op.options, []
    if getattr(o, "weightsFormat", 0):
        reasons.append("weights format is not DEFAULT")
    if op.counts()[0] > 2:
        reasons.append("more than 2 runtime inputs")
    # The parser adds input 0 as the op's runtime input (FullyConnectedOperationParser);
    # a constant one has no runtime value to read (issue 19; ML Drift refuses it too).
    if op.inputs[0].is_const:
        reasons.append("constant input (the parser takes input 0 as a runtime tensor)")
    if getattr(o, "keepNumDims", False) and op.inputs[0].rank != op.outputs[0].rank:
        reasons.append("keep_num_dims with input and output ranks that differ")
    return reasons + activation_rules(op)


def _pool_rules(op, graph) -> list[str]:
    reasons = _positive_fields(op, ("filterHeight", "filterWidth", "strideH", "strideW"))
    runtime, _ = op.counts()
    if runtime != 1:
        reasons.append(f"expected 1 runtime input, got {runtime}")
    return reasons + activation_rules(op)


def reduction_rules(op, graph) -> list[str]:
    """Every reduction, MEAN or not: one runtime input and one constant int32 axes input
    (gpu_compatibility.cc: CheckInputsConstsOutputs for MEAN, CheckInputsOutputs +
    CheckAxesAreInt32Const for the others)."""
    runtime, const = op.counts()
    reasons = []
    if runtime != 1 or const != 1:
        reasons.append(
            f"needs 1 runtime input and 1 constant axes input, has {runtime} "
            f"runtime and {const} constant"
        )
    if len(op.inputs) < 2 or not op.inputs[1].is_const or op.inputs[1].type != INT32:
        reasons.append(f"{op.name} supports constant int32 axes only")
    return reasons


def _one_runtime_input_rules(op, graph) -> list[str]:
    """RESHAPE, TRANSPOSE, TILE, resizes and the like: shape and parameters constant."""
    o, reasons = op.options, []
    runtime, _ = op.counts()
    if runtime != 1:
        reasons.append(f"expected 1 runtime input (shape/params constant), got {runtime}")
    if (
        op.name == "RESIZE_BILINEAR"
        and getattr(o, "alignCorners", False)
        and getattr(o, "halfPixelCenters", False)
    ):
        reasons.append("align_corners with half_pixel_centers")
    return reasons


def _softmax_rules(op, graph) -> list[str]:
    if getattr(op.options, "beta", 1.0) != 1.0:
        return ["Softmax.beta != 1 is not supported"]
    return []


def select_shape_rules(op) -> list[str]:
    """if/else tensors: the output's shape, or a single element (both rule sets)."""
    if len(op.inputs) != 3 or len(op.outputs) != 1:
        return ["expected 3 inputs and 1 output"]
    reasons = []
    cond, yes, no = op.inputs
    out = list(op.outputs[0].shape)
    if cond.type not in (BOOL,) + FLOATS:
        reasons.append("condition must be bool or float")
    for t, what in ((yes, "if"), (no, "else")):
        if t.shape and list(t.shape) != out and (t.rank > 1 or t.shape[0] > 1):
            reasons.append(
                f"{what} tensor {list(t.shape)} neither the output's shape {out} nor a scalar"
            )
    return reasons


def _select_rules(op, graph) -> list[str]:
    reasons = select_shape_rules(op)
    if reasons and reasons[0].startswith("expected"):
        return reasons
    # CheckSelectV2GpuDelegateCompatibility refuses a 2-D CONSTANT if/else tensor (its message
    # reads "2-D if tensor only supported if constant", but the condition tests is_const, at
    # both commits read); a runtime 2-D one is taken. The code, not the message, decides.
    for t, what in ((op.inputs[1], "if"), (op.inputs[2], "else")):
        if t.is_const and t.rank == 2:
            reasons.append(
                f"2-D constant {what} tensor (CheckSelectV2GpuDelegateCompatibility "
                f"refuses is_const && rank 2)"
            )
    return reasons


def _slice_rules(op, graph) -> list[str]:
    if len(op.inputs) < 3:
        return ["SLICE requires 3 inputs"]
    if op.inputs[0].rank not in (3, 4):
        return [f"SLICE input {list(op.inputs[0].shape)} is not 3-D or 4-D"]
    return []


def strided_slice_mask_reasons(op) -> list[str]:
    """The STRIDED_SLICE masks both delegates refuse (ellipsis, new axis, shrink axis)."""
    return [
        f"{label} is not supported"
        for field, label in (
            ("ellipsisMask", "ellipsis_mask"),
            ("newAxisMask", "new_axis_mask"),
            ("shrinkAxisMask", "shrink_axis_mask"),
        )
        if getattr(op.options, field, 0)
    ]


def _strided_slice_rules(op, graph) -> list[str]:
    reasons = strided_slice_mask_reasons(op)
    if len(op.inputs) < 4:
        return reasons + ["STRIDED_SLICE requires 4 inputs"]
    if op.inputs[0].rank not in (3, 4):
        reasons.append(f"input {list(op.inputs[0].shape)} is not 3-D or 4-D")
    return reasons


def _gather_rules(op, graph) -> list[str]:
    runtime, const = op.counts()
    reasons = []
    if not ((runtime == 2 and const == 0) or (runtime == 1 and const == 1)):
        reasons.append("needs 1 or 2 operands")
    if len(op.inputs) > 1 and (op.inputs[1].rank != 1 or op.inputs[1].type != INT32):
        reasons.append("only 1-D int32 indices")
    return reasons


def _pad_rules(op, graph) -> list[str]:
    pads, reasons = op.inputs[1], []
    runtime, _ = op.counts()
    if runtime != 1:
        reasons.append(f"expected 1 runtime input, got {runtime}")
    if pads.rank != 2 or pads.shape[0] not in (3, 4) or pads.shape[1] != 2:
        reasons.append(f"paddings {list(pads.shape)} must be 4x2 or 3x2")
    if op.name == "MIRROR_PAD" and getattr(op.options, "mode", 0) != 0:
        reasons.append("only REFLECT mirror padding")
    return reasons


def _one_hot_rules(op, graph) -> list[str]:
    reasons = []
    if op.inputs[0].type != INT32:
        reasons.append("indices must be int32")
    if not (op.inputs[2].is_const and op.inputs[3].is_const):
        reasons.append("on/off values must be constant scalars")
    return reasons


# Op names -> their parser's rules; where groups overlap (comparisons are two-input ops too)
# the first group listed decides, as in the delegate's parser table.
_RULE_GROUPS = (
    (COMPARISONS, _comparison_rules),
    (("CAST",), _cast_rules),
    (("ADD", "MUL"), _add_mul_rules),
    (("ADD_N",), _add_n_rules),
    (ONE_INPUT, _one_input_rules),
    (TWO_INPUT, _two_input_rules),
    (("BATCH_MATMUL",), _batch_matmul_rules),
    (("CONCATENATION",), _concatenation_rules),
    (("PACK",), _no_rules),
    (("CONV_2D", "DEPTHWISE_CONV_2D"), _conv_rules),
    (("FULLY_CONNECTED",), _fully_connected_rules),
    (("MAX_POOL_2D", "AVERAGE_POOL_2D"), _pool_rules),
    (REDUCTIONS, reduction_rules),
    (
        (
            "RESHAPE",
            "TRANSPOSE",
            "TILE",
            "SPACE_TO_DEPTH",
            "DEPTH_TO_SPACE",
            "RESIZE_BILINEAR",
            "RESIZE_NEAREST_NEIGHBOR",
            "QUANTIZE",
            "HARD_SWISH",
        ),
        _one_runtime_input_rules,
    ),
    (("SOFTMAX",), _softmax_rules),
    (("SELECT", "SELECT_V2"), _select_rules),
    (("SLICE",), _slice_rules),
    (("STRIDED_SLICE",), _strided_slice_rules),
    (("GATHER",), _gather_rules),
    (("PAD", "PADV2", "MIRROR_PAD"), _pad_rules),
    (("ONE_HOT",), _one_hot_rules),
)


def rule_table(groups) -> dict:
    """{op name: rule}; the first group that lists a name decides."""
    table = {}
    for names, rule in groups:
        for name in names:
            table.setdefault(name, rule)
    return table


_RULES = rule_table(_RULE_GROUPS)


def _allowed_types(name: str, allow_quant_ops: bool):
    """GetOpsToReplace's allowed runtime tensor types for the op's inputs and outputs."""
    ins, outs = list(FLOATS), list(FLOATS)
    if allow_quant_ops:
        ins += [INT8, UINT8]
        outs += [INT8, UINT8]
    if name in COMPARISONS:
        outs.append(BOOL)
    if name == "CAST":
        ins += [BOOL, FLOAT32, INT32]
        outs += [FLOAT32, INT32, BOOL]
    if name == "ONE_HOT":
        ins.append(INT32)
    if name in ("SELECT", "SELECT_V2"):
        ins.append(BOOL)
    if name == "LOGICAL_AND":
        ins.append(BOOL)
        outs.append(BOOL)
    if name == "GATHER":
        ins.append(INT32)
    return ins, outs


def _tensor_rules(op, allow_quant_ops: bool) -> list[str]:
    """IsAllAllowedTensors on the op's inputs and outputs."""
    ins, outs = _allowed_types(op.name, allow_quant_ops)
    reasons = []
    for tensors, allowed, what in ((op.inputs, ins, "input"), (op.outputs, outs, "output")):
        for t in tensors:
            if t is None:
                continue
            if t.rank >= 5:
                reasons.append(
                    f"{what} tensor {t.describe()} has rank {t.rank} (the delegate takes rank <= 4)"
                )
            elif not t.is_const and t.type not in allowed:
                reasons.append(
                    f"runtime {what} tensor of type {TYPE_NAMES.get(t.type, t.type)} "
                    f"(allowed here: {sorted({TYPE_NAMES[a] for a in allowed})})"
                )
    return reasons


def refusals(op, graph, allow_quant_ops: bool = True) -> list[str]:
    """Why the delegate's partitioning leaves this op on the CPU ([] when it takes it)."""
    if op.name not in MAX_VERSION or (op.name in QUANT_OPS and not allow_quant_ops):
        return [f"{op.name} has no GPU delegate parser (not supported)"]
    limit = MAX_VERSION[op.name]
    reasons = []
    if limit is not None and op.version > limit:
        reasons.append(f"version {op.version} > {limit}, the highest the parser takes")
    reasons += _RULES.get(op.name, _no_rules)(op, graph)
    return reasons + _tensor_rules(op, allow_quant_ops)


def _identical_inputs(op) -> list[str]:
    """ElementwiseOperationParser::Parse refuses a two-input op other than ADD/MUL whose two
    inputs are one tensor."""
    ins = [t for t in op.inputs if t is not None]
    if (
        op.name in TWO_INPUT
        and len(ins) == 2
        and not ins[0].is_const
        and ins[0].index == ins[1].index
    ):
        return ["identical inputs (Parse refuses them for two-input ops other than ADD/MUL)"]
    return []


def _parse_rules(op) -> list[str]:
    """Checks made only in Parse, after the op was taken (the op's own parser)."""
    runtime, _ = op.counts()
    if op.name == "STRIDED_SLICE" and not all(t is not None and t.is_const for t in op.inputs[1:4]):
        return ["begin/end/strides not constant (Parse reads them with ReadTensor)"]
    if (
        op.name == "BATCH_MATMUL"
        and runtime != 2
        and not (runtime == 1 and op.inputs[1].is_const and op.inputs[1].rank == 2)
    ):
        return [
            "not 2 runtime inputs, nor a runtime left-hand side with a 2-D constant "
            "right-hand side (Parse: 'Not supported batched mat mul case')"
        ]
    if (
        op.name == "TRANSPOSE"
        and op.inputs[1].is_const
        and (op.inputs[1].rank != 1 or op.inputs[1].shape[0] not in (2, 3, 4))
    ):
        return [
            f"permutation {list(op.inputs[1].shape)}: Parse takes 2, 3 or 4 axes "
            f"('Permutation for transpose is invalid')"
        ]
    return []


def build_failures(op, graph) -> list[str]:
    """Why building the delegate would fail on this op once taken: an error in its `Parse` or
    in reading its tensors. Any one makes the whole delegate fail (the model then runs on the
    CPU), unlike a refusal, which only leaves the op to the CPU."""
    reasons = _identical_inputs(op) + _parse_rules(op)
    for t in op.inputs + op.outputs:
        if t is not None and not t.is_const and t.rank == 0:
            reasons.append(
                f"runtime tensor {t.describe()} of rank 0: ExtractTensorShape has no "
                f"layout for it ('has bad input dims size: 0')"
            )
            break
    return reasons


@dataclasses.dataclass(frozen=True)
class Miscompute:
    """A pattern that a rule set takes and computes wrong: `find(op, graph)` returns the fields
    that fill in `why` (a str.format template) where the op is of the pattern, else None."""

    find: Callable[[OpInfo, Graph], dict | None]
    why: str

    def reasons(self, op, graph) -> list[str]:
        """[`why` filled in] where `op` is of this pattern, else []."""
        fields = self.find(op, graph)
        return [] if fields is None else [self.why.format(**fields)]


def miscompute_reasons(patterns, op, graph) -> list[str]:
    """The reasons of every pattern in `patterns` (Miscompute) that `op` is of, in their order."""
    return [reason for pattern in patterns for reason in pattern.reasons(op, graph)]


def _batched_constant(op, graph) -> dict | None:
    """A two-input elementwise op whose constant operand has rank 2 or 3, a first dim > 1, and
    is neither a scalar nor a per-channel vector. The classic parser reads such a constant as
    an HWC tensor (ParseInputsWithConstTensorImpl: [h, w] as HWC(1, h, w), [d0, d1, d2] as
    HWC(d0, d1, d2)) while the runtime operand's layout puts d0 in the batch: they do not line
    up, whatever the shapes. ML Drift computes the same pattern wrong on the real accelerator
    (probes of issue 19 on SwiftShader: [1,4] + const[9,4] gave 9 copies of row 0, [3,4] *
    const[3,4] and [2,1,4] * const[2,1,4] were wrong; const [1,196,2], [1,3,4] and [2,1,3,4]
    were right). Returns the two operands described and the constant's rank, or None."""
    if op.name not in ELEMENTWISE_TWO or len(op.inputs) != 2 or op.counts() != (1, 1):
        return None
    (runtime,), (const,) = op.runtime_inputs(), op.const_inputs()
    if const.rank not in (2, 3) or const.shape[0] == 1 or const.size == 1:
        return None
    return {"const": const.describe(), "runtime": runtime.describe(), "rank": const.rank}


BATCHED_CONSTANT = Miscompute(
    _batched_constant,
    "constant {const} with {runtime}: a rank-{rank} constant whose first dim is > 1 is read "
    "without its batch, at the runtime tensor's own coordinates (on the real accelerator "
    "[1,4] + const[9,4] gave 9 copies of row 0); give it a leading 1 (e.g. [1, 9*4]) or rank 4",
)
# What the delegate takes and computes wrong (ML Drift's list extends it).
MISCOMPUTED = (BATCHED_CONSTANT,)


def miscomputed(op, graph) -> list[str]:
    """Why the delegate would take this op and compute it wrong."""
    return miscompute_reasons(MISCOMPUTED, op, graph)
