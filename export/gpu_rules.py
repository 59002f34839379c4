"""The TFLite GPU delegate's own rules, applied op by op to a `.tflite` flatbuffer.

`tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` in TF 2.21 reports "looks
compatible" whatever the model holds, so this module re-implements the checks the delegate makes
when it decides which ops it takes (`GetOpsToReplace`), read from the LiteRT sources:

* `tflite/delegates/gpu/common/model_builder.cc` (google-ai-edge/LiteRT, commit
  34ec5badbbbfd4d2147d1362f299f58843f84dfc, the code behind ai-edge-litert 2.3): the table of
  op parsers (`NewOperationParser`: an op without a parser is not supported), each parser's
  `IsSupported` (`CheckMaxSupportedOpVersion`, the comparison-consumer rule of
  `ElementwiseOperationParser`, the bool-CAST rule of `CastOperationParser`), the tensor check of
  `GetOpsToReplace` / `IsAllAllowedTensors` (no tensor of rank >= 5; runtime tensors float32 or
  float16, with the per-op exceptions listed there) and the partitioning: the delegate takes the
  largest `max_delegated_partitions` (default 1) blocks of supported ops.
* `tflite/tools/versioning/gpu_compatibility.cc` (google-ai-edge/LiteRT, commit
  007226f498a6fa5204b1127a59d647857a09ceaf): `CheckGpuDelegateCompatibility`, the per-op checks
  (runtime/constant input counts, STRIDED_SLICE masks and rank, CAST types, ADD/MUL
  broadcasting in the delegate's default `kStandard` mode, SELECT_V2 shapes, reduction axes, ...).
* `tensorflow/lite/delegates/gpu/common/selectors/operation_selector.cc` (the GPU kernel of
  BATCHED_MATMUL): the right-hand side becomes the weights of a 1x1 convolution, one matrix for
  the whole batch, so only a right-hand side shaped [1, I, O] (or [1, 1, I, O]) computes a
  matrix product; a constant right-hand side must be 2-D (`BatchedMatMulOperationParser`).
  `gpu_compatibility.cc` accepts any BATCH_MATMUL; this module holds it to the kernel's shape.

Parse-time errors that make the delegate refuse the whole model (not just fall back) are checked
too where our graphs could meet them (identical inputs of a two-input op other than ADD/MUL,
constant begin/end/strides of STRIDED_SLICE, non-positive strides).

The partitioning follows `PartitionGraphIntoIndependentNodeSubsets` (tflite/graph_info.cc): in
execution order, a block grows with every ready op of its kind (GPU or CPU) until none is left,
then the next block starts.

Usage:
    report = check_model(open("rarl.tflite", "rb").read())
    print(report.summary())
    for line in report.fallback_lines(): print(line)

    python -m export.gpu_rules FILE.tflite     # prints the summary; exit 1 if any op falls back
"""

from __future__ import annotations

import collections
import dataclasses
import sys

# TensorType values of the TFLite schema.
FLOAT32, FLOAT16, INT32, UINT8, INT64, STRING, BOOL, INT16, COMPLEX64, INT8 = range(10)
TYPE_NAMES = {FLOAT32: "float32", FLOAT16: "float16", INT32: "int32", UINT8: "uint8",
              INT64: "int64", STRING: "string", BOOL: "bool", INT16: "int16", INT8: "int8"}
FLOATS = (FLOAT32, FLOAT16)

# Ops with a parser in `NewOperationParser` and the highest version the parser takes
# (`CheckMaxSupportedOpVersion`; None: the parser does not check the version).
# DEQUANTIZE and QUANTIZE have a parser only when quantized ops are allowed.
MAX_VERSION = {
    "ABS": 2, "ADD": 2, "ADD_N": 2, "AVERAGE_POOL_2D": 2, "BATCH_MATMUL": None, "CAST": None,
    "CONCATENATION": 2, "CONV_2D": 6, "COS": 2, "CUMSUM": 1, "DENSIFY": 1,
    "DEPTHWISE_CONV_2D": 6, "DEPTH_TO_SPACE": None, "DEQUANTIZE": 3, "DIV": 2, "EQUAL": 2,
    "ELU": 2, "EXP": 2, "FLOOR": 2, "FLOOR_DIV": 2, "FLOOR_MOD": 2, "FULLY_CONNECTED": 9,
    "GATHER": 1, "GELU": 2, "GREATER": 2, "GREATER_EQUAL": 2, "HARD_SWISH": None, "LESS": 2,
    "LESS_EQUAL": 2, "LOGISTIC": 2, "LOG": 2, "LOGICAL_AND": 2, "LSTM": 4, "MAXIMUM": 2,
    "MAX_POOL_2D": 2, "MEAN": None, "MINIMUM": 2, "MIRROR_PAD": 2, "MUL": 3, "NEG": 2,
    "NOT_EQUAL": 2, "ONE_HOT": 1, "PACK": None, "PAD": 2, "PADV2": 2, "POW": 2,
    "REDUCE_MAX": None, "REDUCE_MIN": None, "REDUCE_PROD": None, "QUANTIZE": 2, "RELU": 2,
    "RELU6": 2, "RELU_0_TO_1": 2, "RELU_N1_TO_1": 2, "LEAKY_RELU": 2, "PRELU": 1, "RESHAPE": 1,
    "RESIZE_BILINEAR": 3, "RESIZE_NEAREST_NEIGHBOR": 3, "RSQRT": 2, "SELECT": 1,
    "SELECT_V2": 1, "SIGN": 2, "SIN": 2, "SLICE": 2, "SOFTMAX": 2, "SPACE_TO_DEPTH": 2,
    "SPLIT": None, "SPLIT_V": None, "SQRT": 2, "SQUARE": 2, "SQUARED_DIFFERENCE": 2,
    "STRIDED_SLICE": 4, "SUB": 2, "SUM": None, "TANH": 2, "TILE": None, "TRANSPOSE": 4,
    "TRANSPOSE_CONV": 3, "UNPACK": None,
}
QUANT_OPS = ("QUANTIZE", "DEQUANTIZE")
COMPARISONS = ("GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL")
ONE_INPUT = ("ABS", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT",
             "SIGN", "SIN", "SQRT", "SQUARE", "TANH")
TWO_INPUT = ("DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL",
             "LOGICAL_AND", "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW",
             "SQUARED_DIFFERENCE", "SUB")
REDUCTIONS = ("REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SUM", "MEAN")
# Fused activations the delegate implements (IsActivationSupported): NONE, RELU,
# RELU_N1_TO_1, RELU6, TANH, and SIGMOID; not SIGN_BIT (5).
UNSUPPORTED_ACTIVATIONS = {5: "SIGN_BIT"}


@dataclasses.dataclass
class TensorInfo:
    index: int
    shape: tuple
    type: int
    is_const: bool

    @property
    def rank(self) -> int:
        return len(self.shape)

    def describe(self) -> str:
        return f"{TYPE_NAMES.get(self.type, self.type)}{list(self.shape)}"


@dataclasses.dataclass
class OpInfo:
    index: int
    name: str
    version: int
    inputs: list  # TensorInfo or None (optional input)
    outputs: list
    options: object

    def runtime_inputs(self):
        return [t for t in self.inputs if t is not None and not t.is_const]

    def const_inputs(self):
        return [t for t in self.inputs if t is not None and t.is_const]


@dataclasses.dataclass
class Report:
    ops: list  # OpInfo, execution order
    reasons: dict  # op index -> [reason, ...] for each op that falls back
    partitions: list  # [[op index, ...], ...]: the blocks of GPU ops, in graph order
    max_delegated_partitions: int = 1

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @property
    def fallbacks(self) -> list:
        return sorted(self.reasons)

    def delegated(self) -> list:
        """Op indices the delegate would take: the largest `max_delegated_partitions` blocks."""
        ranked = sorted(self.partitions, key=len, reverse=True)
        return sorted(i for block in ranked[:self.max_delegated_partitions] for i in block)

    @property
    def fully_delegated(self) -> bool:
        return not self.reasons and len(self.partitions) == 1 and len(self.delegated()) == len(
            self.ops)

    def op_counts(self) -> dict:
        return dict(sorted(collections.Counter(op.name for op in self.ops).items()))

    def fallback_lines(self) -> list[str]:
        """One line per op that would fall back to the CPU, naming it and why."""
        return [f"op {i} {self.ops[i].name} (v{self.ops[i].version}, inputs "
                f"{', '.join(t.describe() for t in self.ops[i].inputs if t is not None)}): "
                f"{'; '.join(self.reasons[i])}" for i in self.fallbacks]

    def summary(self) -> str:
        taken = len(self.delegated())
        share = 100.0 * taken / max(self.num_ops, 1)
        sizes = sorted((len(p) for p in self.partitions), reverse=True)
        return (f"GPU delegate rules (LiteRT model_builder.cc / gpu_compatibility.cc): "
                f"{self.num_ops} ops of {len(self.op_counts())} kinds, {len(self.reasons)} "
                f"would fall back to the CPU; {len(self.partitions)} GPU partition(s) "
                f"{sizes if len(sizes) <= 8 else sizes[:8] + ['...']}; the delegate "
                f"(max_delegated_partitions={self.max_delegated_partitions}) takes {taken} of "
                f"{self.num_ops} ops ({share:.1f} %)")

    def as_dict(self) -> dict:
        return {"num_ops": self.num_ops, "op_counts": self.op_counts(),
                "fallbacks": [{"index": i, "op": self.ops[i].name, "reasons": self.reasons[i]}
                              for i in self.fallbacks],
                "partitions": [len(p) for p in self.partitions],
                "delegated_ops": len(self.delegated()),
                "fully_delegated": self.fully_delegated}


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _op_names(schema) -> dict:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def read_model(content: bytes) -> tuple[list, dict, dict, list]:
    """(ops, consumers, producers, graph outputs) of the first subgraph of a flatbuffer."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = _op_names(schema)
    graph = model.subgraphs[0]

    def has_data(buffer_index):
        if buffer_index is None or buffer_index <= 0 or buffer_index >= len(model.buffers):
            return False
        buffer = model.buffers[buffer_index]
        data = getattr(buffer, "data", None)
        return (data is not None and len(data) > 0) or bool(getattr(buffer, "offset", 0))

    tensors = []
    for i, t in enumerate(graph.tensors):
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        tensors.append(TensorInfo(i, shape, int(t.type),
                                  has_data(t.buffer) and not t.isVariable))
    ops, consumers, producers = [], collections.defaultdict(list), {}
    for k, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = f"CUSTOM:{code.customCode.decode() if code.customCode else ''}"
        inputs = [tensors[i] if i >= 0 else None for i in (op.inputs if op.inputs is not None
                                                           else [])]
        outputs = [tensors[i] for i in (op.outputs if op.outputs is not None else [])]
        ops.append(OpInfo(k, name, int(code.version), inputs, outputs, op.builtinOptions))
        for t in inputs:
            if t is not None:
                consumers[t.index].append(k)
        for t in outputs:
            producers[t.index] = k
    return ops, consumers, producers, list(graph.outputs if graph.outputs is not None else [])


def _broadcast_ok(a: TensorInfo, b: TensorInfo) -> bool:
    """CheckAddMulBroadcastCompatibility in the delegate's default (kStandard) mode."""
    if a.rank > 1 and b.rank > 1 and a.rank != b.rank:
        longer, shorter = (a.shape, b.shape) if a.rank >= b.rank else (b.shape, a.shape)
        if len(longer) == 4 and len(shorter) == 3 and longer[0] == 1:
            return True
        if (len(longer) == 4 and len(shorter) == 2 and longer[0] == 1
                and tuple(shorter) == (1, 1)):
            return True
        if (len(longer) == 4 and len(shorter) == 2 and longer[0] == shorter[0]
                and longer[3] == shorter[1]):
            return True
        return False
    return True


def _activation(op: OpInfo) -> list[str]:
    act = getattr(op.options, "fusedActivationFunction", 0) or 0
    return ([f"fused activation {UNSUPPORTED_ACTIVATIONS[act]} is not supported"]
            if act in UNSUPPORTED_ACTIVATIONS else [])


@dataclasses.dataclass(frozen=True)
class _Graph:
    """Who reads and who writes each tensor: consumers[tensor] = [op index, ...],
    producers[tensor] = op index, and the ops in execution order."""

    consumers: dict
    producers: dict
    ops: list


def _counts(op: OpInfo) -> tuple[int, int]:
    """(runtime inputs, constant inputs) of the op."""
    return len(op.runtime_inputs()), len(op.const_inputs())


def _comparison_rules(op: OpInfo, graph: _Graph) -> list[str]:
    # ElementwiseOperationParser::IsSupported: a logical op is accepted only when its output
    # has one producer and one consumer, a CAST / SELECT / SELECT_V2 with float output.
    users = graph.consumers.get(op.outputs[0].index, [])
    if len(users) != 1:
        return [f"comparison output has {len(users)} consumers; the delegate needs exactly "
                f"one CAST/SELECT/SELECT_V2 with float output"]
    user = graph.ops[users[0]]
    if user.name not in ("CAST", "SELECT", "SELECT_V2") or user.outputs[0].type not in FLOATS:
        return [f"comparison feeds {user.name} -> "
                f"{TYPE_NAMES.get(user.outputs[0].type)}; the delegate needs its single "
                f"consumer to be CAST/SELECT/SELECT_V2 with float output"]
    if op.inputs[0] is not None and op.inputs[1] is not None and (
            op.inputs[0].index == op.inputs[1].index):
        return ["identical inputs (Parse refuses them)"]
    return []


def _bool_cast_rules(op: OpInfo, graph: _Graph) -> list[str] | None:
    """CastOperationParser for bool -> float: logical_op -> bool tensor -> CAST -> float, the
    cast's output consumed by exactly one op (a graph output cast is done on the CPU). None:
    the cast is none of these, and the general CAST rules decide."""
    produced = graph.producers.get(op.inputs[0].index)
    if produced is None or len(graph.consumers.get(op.inputs[0].index, [])) != 1:
        return ["bool CAST whose input is not a single-use comparison"]
    if len(graph.consumers.get(op.outputs[0].index, [])) != 1:
        return ["bool CAST whose output is not consumed by exactly one op (a model "
                "output cast from bool runs on the CPU)"]
    if graph.ops[produced].name in COMPARISONS:
        return []
    return None


def _cast_rules(op: OpInfo, graph: _Graph) -> list[str]:
    src, dst = op.inputs[0].type, op.outputs[0].type
    if src == BOOL and dst in FLOATS:
        decided = _bool_cast_rules(op, graph)
        if decided is not None:
            return decided
    reasons = []
    ok = ((src == BOOL and dst in FLOATS) or (src in FLOATS and dst == BOOL)
          or (src in (FLOAT32, INT32) and dst in (FLOAT32, INT32)))
    if not ok:
        reasons.append(f"CAST {TYPE_NAMES.get(src)} -> {TYPE_NAMES.get(dst)} is not "
                       f"supported")
    runtime, _ = _counts(op)
    if runtime != 1:
        reasons.append(f"expected 1 runtime input, got {runtime}")
    return reasons


def _add_mul_rules(op: OpInfo, graph: _Graph) -> list[str]:
    if len(op.inputs) != 2:
        return [f"{op.name} requires two input tensors"]
    reasons = []
    a, b = op.inputs
    if (op.name == "ADD" or a.rank != b.rank) and not _broadcast_ok(a, b):
        reasons.append(f"broadcast {list(a.shape)} with {list(b.shape)} is not supported")
    if _counts(op)[0] == 0:
        reasons.append("no runtime input")
    return reasons + _activation(op)


def _one_input_rules(op: OpInfo, graph: _Graph) -> list[str]:
    runtime, const = _counts(op)
    if runtime != 1 or const != 0:
        return [f"needs 1 runtime and 0 constant inputs, has {runtime} and {const}"]
    return []


def _two_input_rules(op: OpInfo, graph: _Graph) -> list[str]:
    runtime, const = _counts(op)
    reasons = []
    if not ((runtime == 2 and const == 0) or (runtime == 1 and const == 1)):
        reasons.append(f"needs 2 runtime inputs or 1 runtime and 1 constant, has {runtime} "
                       f"and {const}")
    if (runtime == 2 and op.inputs[0].index == op.inputs[1].index):
        reasons.append("identical inputs (Parse refuses them for ops other than ADD/MUL)")
    return reasons + _activation(op)


def _batch_matmul_rules(op: OpInfo, graph: _Graph) -> list[str]:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return ["expected 2 inputs and 1 output"]
    reasons = []
    lhs, rhs = op.inputs
    if getattr(op.options, "adjX", False) or getattr(op.options, "adjY", False):
        reasons.append("adj_x/adj_y: the GPU kernel ignores them")
    if rhs.is_const:
        if rhs.rank != 2:
            reasons.append(f"constant right-hand side {list(rhs.shape)} must be 2-D")
    elif not ((rhs.rank == 3 and rhs.shape[0] == 1)
              or (rhs.rank == 4 and rhs.shape[0] == 1 and rhs.shape[1] == 1)):
        reasons.append(f"runtime right-hand side {list(rhs.shape)}: the GPU kernel uses it "
                       f"as the [1, I, O] weights of a 1x1 convolution shared by the batch")
    if lhs.is_const:
        reasons.append("constant left-hand side")
    return reasons


def _concatenation_rules(op: OpInfo, graph: _Graph) -> list[str]:
    outs = op.outputs[0]
    axis = (getattr(op.options, "axis", 0) or 0) % max(outs.rank, 1)
    reasons = []
    for t in op.inputs:
        if t is None:
            continue
        if t.rank != outs.rank or any(
                d != e for k, (d, e) in enumerate(zip(t.shape, outs.shape)) if k != axis):
            reasons.append(f"input {list(t.shape)} differs from output {list(outs.shape)} "
                           f"off the concat axis")
    return reasons + _activation(op)


def _no_rules(op: OpInfo, graph: _Graph) -> list[str]:
    return []


def _positive_fields(op: OpInfo, fields) -> list[str]:
    return [f"{field} <= 0" for field in fields if (getattr(op.options, field, 1) or 0) <= 0]


def _conv_rules(op: OpInfo, graph: _Graph) -> list[str]:
    runtime, _ = _counts(op)
    reasons = []
    if runtime > 2:
        reasons.append(f"expected 1 or 2 runtime inputs, got {runtime}")
    reasons += _positive_fields(op, ("strideH", "strideW", "dilationHFactor",
                                     "dilationWFactor"))
    if op.name == "DEPTHWISE_CONV_2D" and any(
            t.rank != 4 for t in (op.inputs[0], op.inputs[1], op.outputs[0])):
        reasons.append("input, filter and output must be 4-D")
    return reasons + _activation(op)


def _fully_connected_rules(op: OpInfo, graph: _Graph) -> list[str]:
    o, reasons = op.options, []
    if getattr(o, "weightsFormat", 0):
        reasons.append("weights format is not DEFAULT")
    if _counts(op)[0] > 2:
        reasons.append("more than 2 runtime inputs")
    if getattr(o, "keepNumDims", False) and op.inputs[0].rank != op.outputs[0].rank:
        reasons.append("keep_num_dims with input and output ranks that differ")
    return reasons + _activation(op)


def _pool_rules(op: OpInfo, graph: _Graph) -> list[str]:
    reasons = _positive_fields(op, ("filterHeight", "filterWidth", "strideH", "strideW"))
    runtime, _ = _counts(op)
    if runtime != 1:
        reasons.append(f"expected 1 runtime input, got {runtime}")
    return reasons + _activation(op)


def _reduction_rules(op: OpInfo, graph: _Graph) -> list[str]:
    runtime, const = _counts(op)
    reasons = []
    if runtime != 1 or (op.name == "MEAN" and const != 1):
        reasons.append(f"needs 1 runtime input and constant axes, has {runtime} runtime")
    if len(op.inputs) < 2 or not op.inputs[1].is_const or op.inputs[1].type != INT32:
        reasons.append(f"{op.name} supports constant int32 axes only")
    return reasons


def _one_runtime_input_rules(op: OpInfo, graph: _Graph) -> list[str]:
    """RESHAPE, TRANSPOSE, TILE, resizes and the like: shape and parameters constant."""
    o, reasons = op.options, []
    runtime, _ = _counts(op)
    if runtime != 1:
        reasons.append(f"expected 1 runtime input (shape/params constant), got {runtime}")
    if op.name == "TRANSPOSE" and op.inputs[0].rank != len(op.inputs[0].shape):
        reasons.append("bad permutation")
    if op.name == "RESIZE_BILINEAR" and getattr(o, "alignCorners", False) and getattr(
            o, "halfPixelCenters", False):
        reasons.append("align_corners with half_pixel_centers")
    return reasons


def _softmax_rules(op: OpInfo, graph: _Graph) -> list[str]:
    if getattr(op.options, "beta", 1.0) != 1.0:
        return ["Softmax.beta != 1 is not supported"]
    return []


def _select_rules(op: OpInfo, graph: _Graph) -> list[str]:
    if len(op.inputs) != 3 or len(op.outputs) != 1:
        return ["expected 3 inputs and 1 output"]
    reasons = []
    cond, yes, no = op.inputs
    out = list(op.outputs[0].shape)
    if cond.type not in (BOOL,) + FLOATS:
        reasons.append("condition must be bool or float")
    for t, what in ((yes, "if"), (no, "else")):
        if t.shape and list(t.shape) != out and (t.rank > 1 or t.shape[0] > 1):
            reasons.append(f"{what} tensor {list(t.shape)} neither the output's shape "
                           f"{out} nor a scalar")
        if t.is_const and t.rank == 2:
            reasons.append(f"2-D constant {what} tensor")
    return reasons


def _slice_rules(op: OpInfo, graph: _Graph) -> list[str]:
    if len(op.inputs) < 3:
        return ["SLICE requires 3 inputs"]
    if op.inputs[0].rank not in (3, 4):
        return [f"SLICE input {list(op.inputs[0].shape)} is not 3-D or 4-D"]
    return []


def _strided_slice_rules(op: OpInfo, graph: _Graph) -> list[str]:
    reasons = [f"{label} is not supported"
               for field, label in (("ellipsisMask", "ellipsis_mask"),
                                    ("newAxisMask", "new_axis_mask"),
                                    ("shrinkAxisMask", "shrink_axis_mask"))
               if getattr(op.options, field, 0)]
    if len(op.inputs) < 4:
        return reasons + ["STRIDED_SLICE requires 4 inputs"]
    if op.inputs[0].rank not in (3, 4):
        reasons.append(f"input {list(op.inputs[0].shape)} is not 3-D or 4-D")
    if not all(t.is_const for t in op.inputs[1:4]):
        reasons.append("begin/end/strides must be constant")
    return reasons


def _gather_rules(op: OpInfo, graph: _Graph) -> list[str]:
    runtime, const = _counts(op)
    reasons = []
    if not ((runtime == 2 and const == 0) or (runtime == 1 and const == 1)):
        reasons.append("needs 1 or 2 operands")
    if len(op.inputs) > 1 and (op.inputs[1].rank != 1 or op.inputs[1].type != INT32):
        reasons.append("only 1-D int32 indices")
    return reasons


def _pad_rules(op: OpInfo, graph: _Graph) -> list[str]:
    pads, reasons = op.inputs[1], []
    runtime, _ = _counts(op)
    if runtime != 1:
        reasons.append(f"expected 1 runtime input, got {runtime}")
    if pads.rank != 2 or pads.shape[0] not in (3, 4) or pads.shape[1] != 2:
        reasons.append(f"paddings {list(pads.shape)} must be 4x2 or 3x2")
    if op.name == "MIRROR_PAD" and getattr(op.options, "mode", 0) != 0:
        reasons.append("only REFLECT mirror padding")
    return reasons


def _one_hot_rules(op: OpInfo, graph: _Graph) -> list[str]:
    reasons = []
    if op.inputs[0].type != INT32:
        reasons.append("indices must be int32")
    if not (op.inputs[2].is_const and op.inputs[3].is_const):
        reasons.append("on/off values must be constant scalars")
    return reasons


# Op names -> their parser's rules; where groups overlap (comparisons are two-input ops too)
# the first group listed decides, as in the delegate's parser table.
_RULE_GROUPS = (
    (COMPARISONS, _comparison_rules), (("CAST",), _cast_rules), (("ADD", "MUL"), _add_mul_rules),
    (ONE_INPUT, _one_input_rules), (TWO_INPUT, _two_input_rules),
    (("BATCH_MATMUL",), _batch_matmul_rules), (("CONCATENATION",), _concatenation_rules),
    (("PACK",), _no_rules), (("CONV_2D", "DEPTHWISE_CONV_2D"), _conv_rules),
    (("FULLY_CONNECTED",), _fully_connected_rules),
    (("MAX_POOL_2D", "AVERAGE_POOL_2D"), _pool_rules), (REDUCTIONS, _reduction_rules),
    (("RESHAPE", "TRANSPOSE", "TILE", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "RESIZE_BILINEAR",
      "RESIZE_NEAREST_NEIGHBOR", "QUANTIZE", "HARD_SWISH"), _one_runtime_input_rules),
    (("SOFTMAX",), _softmax_rules), (("SELECT", "SELECT_V2"), _select_rules),
    (("SLICE",), _slice_rules), (("STRIDED_SLICE",), _strided_slice_rules),
    (("GATHER",), _gather_rules), (("PAD", "PADV2", "MIRROR_PAD"), _pad_rules),
    (("ONE_HOT",), _one_hot_rules),
)


def _rule_table() -> dict:
    table = {}
    for names, rule in _RULE_GROUPS:
        for name in names:
            table.setdefault(name, rule)
    return table


_RULES = _rule_table()


def _op_rules(op: OpInfo, consumers, producers, ops) -> list[str]:
    """Reasons why the op's parser (`IsSupported`) refuses it; [] if it accepts it."""
    rule = _RULES.get(op.name, _no_rules)
    return rule(op, _Graph(consumers, producers, ops))


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


def _tensor_rules(op: OpInfo, allow_quant_ops: bool) -> list[str]:
    """IsAllAllowedTensors on the op's inputs and outputs."""
    ins, outs = _allowed_types(op.name, allow_quant_ops)
    reasons = []
    for tensors, allowed, what in ((op.inputs, ins, "input"), (op.outputs, outs, "output")):
        for t in tensors:
            if t is None:
                continue
            if t.rank >= 5:
                reasons.append(f"{what} tensor {t.describe()} has rank {t.rank} (the delegate "
                               f"takes rank <= 4)")
            elif not t.is_const and t.type not in allowed:
                reasons.append(f"runtime {what} tensor of type {TYPE_NAMES.get(t.type, t.type)} "
                               f"(allowed here: {sorted({TYPE_NAMES[a] for a in allowed})})")
    return reasons


def _is_fp16_weight_dequantize(op: OpInfo) -> bool:
    """A DEQUANTIZE of a constant float16 weight (float16 quantization): the delegate's
    FP16GraphPartitionHelper folds it into its consumer instead of running it."""
    return (op.name == "DEQUANTIZE" and op.inputs[0] is not None and op.inputs[0].is_const
            and op.inputs[0].type == FLOAT16)


def check_op(op: OpInfo, consumers, producers, ops, allow_quant_ops: bool = True) -> list[str]:
    """Why the delegate would leave this op on the CPU ([] when it takes it)."""
    if _is_fp16_weight_dequantize(op):
        return []
    if op.name not in MAX_VERSION or (op.name in QUANT_OPS and not allow_quant_ops):
        return [f"{op.name} has no GPU delegate parser (not supported)"]
    limit = MAX_VERSION[op.name]
    reasons = []
    if limit is not None and op.version > limit:
        reasons.append(f"version {op.version} > {limit}, the highest the parser takes")
    reasons += _op_rules(op, consumers, producers, ops)
    reasons += _tensor_rules(op, allow_quant_ops)
    return reasons


def partition(ops, supported: list[bool], producers) -> list[tuple[bool, list[int]]]:
    """All blocks, GPU and CPU, as `PartitionGraphIntoIndependentNodeSubsets` forms them:
    [(is_gpu, [op index, ...]), ...] in the order they run."""
    done = [False] * len(ops)
    blocks = []
    deps = [[producers[t.index] for t in op.inputs if t is not None and t.index in producers]
            for op in ops]
    while not all(done):
        # The first ready op sets the block's kind; the block then takes every ready op of
        # that kind, in execution order, until none is left.
        kind, members = None, []
        changed = True
        while changed:
            changed = False
            for i in range(len(ops)):
                if done[i] or not all(done[d] for d in deps[i]):
                    continue
                if kind is None:
                    kind = supported[i]
                if supported[i] == kind:
                    done[i] = True
                    members.append(i)
                    changed = True
        blocks.append((kind, members))
    return blocks


def check_model(content: bytes, max_delegated_partitions: int = 1,
                allow_quant_ops: bool = True) -> Report:
    """Applies the delegate's rules to every op of the model's first subgraph."""
    ops, consumers, producers, _ = read_model(content)
    # FP16GraphPartitionHelper (tflite/delegates/utils.cc) checks a consumer of a float16
    # weight's DEQUANTIZE as if it read the constant itself (RemapFp16InputTensors).
    for op in ops:
        if _is_fp16_weight_dequantize(op):
            op.outputs[0].is_const = True
    reasons = {}
    for op in ops:
        why = check_op(op, consumers, producers, ops, allow_quant_ops)
        if why:
            reasons[op.index] = why
    supported = [op.index not in reasons for op in ops]
    blocks = partition(ops, supported, producers)
    return Report(ops, reasons, [members for kind, members in blocks if kind],
                  max_delegated_partitions)


def main(argv) -> int:
    if len(argv) != 2:
        print("usage: python -m export.gpu_rules FILE.tflite", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        report = check_model(f.read())
    print(report.summary())
    for line in report.fallback_lines():
        print(line)
    return 0 if report.fully_delegated else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
