"""The first subgraph of a `.tflite` flatbuffer as the GPU rule checks see it: tensors (shape,
type, constant or not), ops in execution order, who reads and who writes each tensor, and the
partitioning of the ops into GPU and CPU blocks (`partition`).

Shared by both rule sets of rarl_tf/export/gpu_rules.py (the classic TFLite GPU delegate and ML
Drift); holds no rule of its own.
"""

from __future__ import annotations

import collections
import dataclasses

# TensorType values of the TFLite schema.
FLOAT32, FLOAT16, INT32, UINT8, INT64, STRING, BOOL, INT16, COMPLEX64, INT8 = range(10)
TYPE_NAMES = {
    FLOAT32: "float32",
    FLOAT16: "float16",
    INT32: "int32",
    UINT8: "uint8",
    INT64: "int64",
    STRING: "string",
    BOOL: "bool",
    INT16: "int16",
    INT8: "int8",
}
FLOATS = (FLOAT32, FLOAT16)


@dataclasses.dataclass
class TensorInfo:
    index: int
    shape: tuple
    type: int
    is_const: bool

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count

    def describe(self) -> str:
        return (
            f"{'const ' if self.is_const else ''}{TYPE_NAMES.get(self.type, self.type)}"
            f"{list(self.shape)}"
        )


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

    def counts(self) -> tuple[int, int]:
        """(runtime inputs, constant inputs)."""
        return len(self.runtime_inputs()), len(self.const_inputs())


@dataclasses.dataclass(frozen=True)
class Graph:
    """The ops in execution order; consumers[tensor] = [op index, ...], producers[tensor] =
    op index."""

    ops: list
    consumers: dict
    producers: dict

    @classmethod
    def of(cls, ops) -> "Graph":
        consumers, producers = collections.defaultdict(list), {}
        for op in ops:
            for t in op.inputs:
                if t is not None:
                    consumers[t.index].append(op.index)
            for t in op.outputs:
                producers[t.index] = op.index
        return cls(list(ops), consumers, producers)

    def users(self, tensor: TensorInfo) -> list:
        return self.consumers.get(tensor.index, [])


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _has_data(model, buffer_index) -> bool:
    if buffer_index is None or buffer_index <= 0 or buffer_index >= len(model.buffers):
        return False
    buffer = model.buffers[buffer_index]
    data = getattr(buffer, "data", None)
    return (data is not None and len(data) > 0) or bool(getattr(buffer, "offset", 0))


def _op_name(schema, code) -> str:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = names.get(builtin, str(builtin))
    if name == "CUSTOM":
        name = f"CUSTOM:{code.customCode.decode() if code.customCode else ''}"
    return name


def read_model(content: bytes) -> Graph:
    """The first subgraph of a flatbuffer."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    graph = model.subgraphs[0]
    tensors = [
        TensorInfo(
            i,
            tuple(int(d) for d in (t.shape if t.shape is not None else ())),
            int(t.type),
            _has_data(model, t.buffer) and not t.isVariable,
        )
        for i, t in enumerate(graph.tensors)
    ]
    ops = []
    for k, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        inputs = [
            tensors[i] if i >= 0 else None for i in (op.inputs if op.inputs is not None else [])
        ]
        outputs = [tensors[i] for i in (op.outputs if op.outputs is not None else [])]
        ops.append(
            OpInfo(k, _op_name(schema, code), int(code.version), inputs, outputs, op.builtinOptions)
        )
    return Graph.of(ops)


def partition(graph: Graph, supported: list[bool]) -> list[tuple[bool, list[int]]]:
    """All blocks, GPU and CPU, as `PartitionGraphIntoIndependentNodeSubsets`
    (tflite/graph_info.cc) forms them: [(is_gpu, [op index, ...]), ...] in the order they run.
    In execution order, a block grows with every ready op of its kind until none is left."""
    ops = graph.ops
    done = [False] * len(ops)
    blocks = []
    deps = [
        [
            graph.producers[t.index]
            for t in op.inputs
            if t is not None and t.index in graph.producers
        ]
        for op in ops
    ]
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
