"""Each GPU-delegate rule of rarl_tf/export/gpu_rules.py, shown with a tiny model that breaks it."""

import numpy as np
import pytest
import tensorflow as tf

from rarl_tf.export import gpu_rules
from rarl_tf.export.tflite_graph import Graph


def _convert(fn, *specs) -> bytes:
    concrete = tf.function(fn, input_signature=list(specs)).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _spec(*shape):
    return tf.TensorSpec(shape, tf.float32)


def _flagged(report, op_name):
    """Reasons given for the ops named `op_name` that fall back."""
    return [
        r for i, reasons in report.reasons.items() if report.ops[i].name == op_name for r in reasons
    ]


def test_a_clean_model_is_one_partition():
    kernel = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 8)), tf.float32)
    dense = tf.constant(np.random.default_rng(1).normal(size=(8, 5)), tf.float32)

    def fn(x):
        y = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))
        y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        return tf.nn.softmax(tf.matmul(tf.reduce_mean(y, axis=[1, 2]), dense))

    report = gpu_rules.check_model(_convert(fn, _spec(1, 8, 8, 3)))
    assert report.reasons == {}
    assert report.fully_delegated
    assert len(report.partitions) == 1 and len(report.delegated()) == report.num_ops
    assert "0 would fall back" in report.summary()


def test_op_without_a_parser_falls_back_and_splits_the_graph():
    def fn(x):
        y = tf.nn.relu(x * 2.0)
        best = tf.argmax(y, axis=-1, output_type=tf.int32)  # ARG_MAX: no GPU parser
        return tf.nn.relu(tf.cast(best, tf.float32)[:, None] + y)

    report = gpu_rules.check_model(_convert(fn, _spec(1, 6)))
    assert "ARG_MAX has no GPU delegate parser" in " ".join(_flagged(report, "ARG_MAX"))
    assert not report.fully_delegated
    assert len(report.partitions) >= 2  # GPU ops before and after the CPU op
    assert len(report.delegated()) < report.num_ops
    assert any("ARG_MAX" in line for line in report.fallback_lines())


def test_rank_five_tensors_are_refused():
    def fn(x):
        return tf.reduce_max(tf.reshape(x, [1, 2, 3, 4, 5]), axis=[2, 3])

    report = gpu_rules.check_model(_convert(fn, _spec(1, 120)))
    reasons = [r for rs in report.reasons.values() for r in rs]
    assert any("rank 5" in r for r in reasons)


def test_comparison_must_feed_a_single_float_cast():
    def bad(x):
        inside = (x >= 0.0) & (x <= 1.0)  # GREATER_EQUAL / LESS_EQUAL -> LOGICAL_AND
        return x * tf.cast(inside, tf.float32)

    def good(x):
        return x * (tf.cast(x >= 0.0, tf.float32) * tf.cast(x <= 1.0, tf.float32))

    report = gpu_rules.check_model(_convert(bad, _spec(2, 4)))
    assert "LOGICAL_AND" in " ".join(_flagged(report, "GREATER_EQUAL"))
    assert "LOGICAL_AND" in " ".join(_flagged(report, "LESS_EQUAL"))
    assert gpu_rules.check_model(_convert(good, _spec(2, 4))).fully_delegated


def test_bool_cast_as_a_model_output_runs_on_the_cpu():
    def fn(x):
        return tf.cast(x > 0.0, tf.float32)  # the cast's output has no consumer

    report = gpu_rules.check_model(_convert(fn, _spec(1, 4, 4, 2)))
    assert "not consumed by exactly one op" in " ".join(_flagged(report, "CAST"))


def test_strided_slice_masks_and_rank():
    def shrink(x):
        return tf.nn.relu(x[:, 0])  # shrink_axis_mask

    def two_d(x):
        return tf.nn.relu(x[:, 1:3] * 2.0)  # a 2-D input

    assert "shrink_axis_mask" in " ".join(
        _flagged(gpu_rules.check_model(_convert(shrink, _spec(1, 3, 4, 5))), "STRIDED_SLICE")
    )
    assert "not 3-D or 4-D" in " ".join(
        _flagged(gpu_rules.check_model(_convert(two_d, _spec(4, 6))), "STRIDED_SLICE")
    )


def test_batch_matmul_right_hand_side_must_be_one_matrix():
    def batched(a, b):
        return tf.matmul(a, b)  # [9, 4, 16] @ [9, 16, 8]: one matrix per box

    def shared(a, b):
        return tf.matmul(a, b)  # [1, 36, 16] @ [1, 16, 8]

    report = gpu_rules.check_model(_convert(batched, _spec(9, 4, 16), _spec(9, 16, 8)))
    assert "[1, I, O]" in " ".join(_flagged(report, "BATCH_MATMUL"))
    assert gpu_rules.check_model(
        _convert(shared, _spec(1, 36, 16), _spec(1, 16, 8))
    ).fully_delegated


def test_add_broadcast_between_ranks():
    def fn(a, b):
        return tf.nn.relu(a + b)  # [196, 64] + [1, 1, 64]: not a broadcast the delegate has

    report = gpu_rules.check_model(_convert(fn, _spec(196, 64), _spec(1, 1, 64)))
    assert "broadcast" in " ".join(_flagged(report, "ADD"))


def test_runtime_int32_tensors_are_refused():
    def fn(x):
        n = tf.cast(x, tf.int32) * 3  # MUL on an int32 runtime tensor
        return tf.cast(n, tf.float32)

    report = gpu_rules.check_model(_convert(fn, _spec(1, 8)))
    assert "runtime input tensor of type int32" in " ".join(_flagged(report, "MUL"))


def test_pack_to_rank_five_and_concat_are_checked_by_rank():
    def fn(a, b):
        return tf.reduce_sum(tf.stack([a, b], axis=1), axis=1)  # PACK -> [1, 2, 2, 3, 4]

    report = gpu_rules.check_model(_convert(fn, _spec(1, 2, 3, 4), _spec(1, 2, 3, 4)))
    assert any("rank 5" in r for r in _flagged(report, "PACK"))


def _op(name, inputs, outputs, version=1, options=None, index=0):
    return gpu_rules.OpInfo(index, name, version, inputs, outputs, options)


def _t(index, shape, kind=gpu_rules.FLOAT32, const=False):
    return gpu_rules.TensorInfo(index, tuple(shape), kind, const)


def _refused(op, rules="classic", ops=None):
    return gpu_rules.check_op(op, Graph.of(ops or [op]), rules)["refused"]


def test_op_versions_above_the_parser_limit():
    op = _op(
        "RESHAPE", [_t(0, [1, 4]), _t(1, [2], gpu_rules.INT32, True)], [_t(2, [2, 2])], version=2
    )
    assert any("version 2 > 1" in r for r in _refused(op))
    op.version = 1
    assert _refused(op) == []


def test_cast_types():
    op = _op("CAST", [_t(0, [1, 4], gpu_rules.FLOAT32)], [_t(1, [1, 4], gpu_rules.INT64)])
    assert any("not supported" in r for r in _refused(op))


def test_cli_exit_status(tmp_path, capsys):
    def fn(x):
        return tf.argmax(x, axis=-1, output_type=tf.int32)

    path = tmp_path / "bad.tflite"
    path.write_bytes(_convert(fn, _spec(1, 5)))
    assert gpu_rules.main(["gpu_rules", str(path), "--rules=classic"]) == 1
    assert "ARG_MAX has no GPU delegate parser" in capsys.readouterr().out
    assert gpu_rules.main(["gpu_rules", str(path), "--rules=nope"]) == 2


# --- The broadcasting-constant and split patterns: verdicts of both rule sets, each checked
# against a probe model of the same pattern run on the real ML Drift accelerator (SwiftShader,
# issue 19): the "wrong" ones differed from the CPU by > 1, the "right" ones by 0.


def test_batched_constant_is_computed_wrong_by_both():
    nine = tf.constant(np.random.default_rng(2).normal(size=(9, 4)), tf.float32)
    content = _convert(lambda x: x + nine, _spec(1, 4))  # ADD float32[1,4] + const[9,4]
    for rules in ("classic", "ml_drift"):
        report = gpu_rules.check_model(content, rules)
        assert report.fully_delegated and not report.ok
        assert "row 0" in " ".join(r for rs in report.wrong.values() for r in rs)
        assert "computed WRONG" in report.summary()
    same = tf.constant(np.random.default_rng(3).normal(size=(3, 4)), tf.float32)
    assert gpu_rules.check_model(_convert(lambda x: x * same, _spec(3, 4)), "ml_drift").wrong


def test_constants_with_a_leading_one_are_computed_right():
    row = tf.constant(np.ones((1, 4)), tf.float32)
    grid = tf.constant(np.random.default_rng(4).normal(size=(1, 196, 2)), tf.float32)
    for fn, spec in (
        (lambda x: x + row, _spec(9, 4)),
        (lambda x: tf.math.squared_difference(x, grid), _spec(1, 1, 2)),
    ):
        assert gpu_rules.check_model(_convert(fn, spec), "ml_drift").ok


def test_two_outputs_of_one_split_are_computed_wrong_on_ml_drift():
    def split_div(x):
        point, count = tf.split(x * 2.0, [2, 1], axis=-1)
        return point / count  # DIV [1,2] / [1,1], both from one SPLIT_V

    report = gpu_rules.check_model(_convert(split_div, _spec(1, 3)), "ml_drift")
    assert report.fully_delegated  # unequal SPLIT_V taken, as the shipped accelerator does
    assert "two outputs of one SPLIT_V" in " ".join(report.problem_lines())
    divided = _convert(lambda x, n: x / n, _spec(1, 2), _spec(1, 1))  # a runtime divisor alone
    assert gpu_rules.check_model(divided, "ml_drift").ok


def test_ml_drift_accepts_arg_max_and_batched_matmul():
    arg_max = _convert(
        lambda x: tf.cast(tf.argmax(x, -1, output_type=tf.int32), tf.float32), _spec(1, 6)
    )
    batched = _convert(tf.matmul, _spec(9, 4, 16), _spec(9, 16, 8))
    for content in (arg_max, batched):
        assert gpu_rules.check_model(content, "ml_drift").ok
        assert not gpu_rules.check_model(content, "classic").fully_delegated


def test_ml_drift_requires_split_version_1():
    split = _op(
        "SPLIT",
        [_t(0, [1], gpu_rules.INT32, True), _t(1, [1, 4])],
        [_t(2, [1, 2]), _t(3, [1, 2])],
        version=2,
        options=None,
    )
    assert any("version 2 > 1" in r for r in _refused(split, "ml_drift"))
    split.version = 1
    assert _refused(split, "ml_drift") == []


def test_summaries_name_the_rule_set_and_say_they_predict(tmp_path, capsys):
    content = _convert(lambda x: tf.nn.relu(x * 2.0), _spec(1, 4))
    classic, drift = gpu_rules.check_model(content), gpu_rules.check_model(content, "ml_drift")
    assert "classic TFLite GPU delegate" in classic.summary()
    assert "prediction" in classic.summary() and "cannot run on this machine" in classic.summary()
    assert "ML Drift" in drift.summary() and "prediction" in drift.summary()
    assert drift.as_dict()["rules"] == "ml_drift" and drift.as_dict()["ok"]
    path = tmp_path / "fine.tflite"
    path.write_bytes(content)
    assert gpu_rules.main(["gpu_rules", str(path)]) == 0  # both rule sets
    out = capsys.readouterr().out
    assert "classic TFLite" in out and "ML Drift" in out
    with pytest.raises(ValueError, match="not a rule set"):
        gpu_rules.check_model(content, "android")


# --- Checker errors of issue 19, each with the case that used to pass.


def test_select_refuses_a_2d_constant_not_a_runtime_tensor():
    # gpu_compatibility.cc (007226f, d6d8577) tests `is_const && dims.size() == 2`, whatever
    # its message says; a runtime 2-D if/else goes through Parse's AddInput. Issue 19 called
    # the rule inverted: the code read says otherwise, and the checker follows the code.
    cond, out = _t(0, [2, 3], gpu_rules.BOOL), _t(3, [2, 3])
    const_if = _op("SELECT_V2", [cond, _t(1, [2, 3], const=True), _t(2, [2, 3])], [out])
    runtime_if = _op("SELECT_V2", [cond, _t(1, [2, 3]), _t(2, [2, 3])], [out])
    assert any("2-D constant if" in r for r in _refused(const_if))
    assert _refused(runtime_if) == []
    assert _refused(const_if, "ml_drift") == []  # support_select.cc has no such rule


def test_constant_fully_connected_input_and_add_n_of_three_are_refused():
    weights = _t(1, [4, 8], const=True)
    fc = _op("FULLY_CONNECTED", [_t(0, [1, 8], const=True), weights], [_t(2, [1, 4])])
    assert any("constant input" in r for r in _refused(fc))
    assert any("every input constant" in r for r in _refused(fc, "ml_drift"))
    add_n = _op("ADD_N", [_t(0, [1, 4]), _t(1, [1, 4]), _t(2, [1, 4])], [_t(3, [1, 4])])
    assert any("exactly 2" in r for r in _refused(add_n))
    add_n.inputs = add_n.inputs[:2]
    assert _refused(add_n) == []


def test_reductions_need_one_runtime_and_one_constant_axes_input():
    for name in ("SUM", "REDUCE_MAX", "MEAN"):
        runtime_axes = _op(
            name, [_t(0, [1, 4, 4, 2]), _t(1, [2], gpu_rules.INT32)], [_t(2, [1, 2])]
        )
        assert any("constant" in r for r in _refused(runtime_axes)), name
        good = _op(name, [_t(0, [1, 4, 4, 2]), _t(1, [2], gpu_rules.INT32, True)], [_t(2, [1, 2])])
        assert _refused(good) == []


def _chain(*ops):
    for k, op in enumerate(ops):
        op.index = k
    return gpu_rules.check_graph(Graph.of(list(ops)), "classic")


def test_rank_0_runtime_tensor_fails_the_whole_classic_delegate():
    scalar = _t(1, [])
    report = _chain(
        _op("RESHAPE", [_t(0, [1]), _t(9, [0], gpu_rules.INT32, True)], [scalar]),
        _op("RELU", [scalar], [_t(2, [])]),
    )
    assert report.fallbacks == [] and report.fatal
    assert report.delegated() == [] and not report.fully_delegated
    assert "would FAIL" in report.summary()
    assert any("rank 0" in line for line in report.problem_lines())


def test_parse_failure_fails_the_whole_delegate_not_just_the_op():
    # gpu_compatibility.cc takes any BATCH_MATMUL; BatchedMatMulOperationParser::Parse then
    # fails on a constant right-hand side that is not 2-D: no op runs on the GPU at all.
    lhs, out = _t(0, [1, 4, 16]), _t(2, [1, 4, 8])
    report = _chain(
        _op("BATCH_MATMUL", [lhs, _t(1, [1, 16, 8], const=True)], [out]),
        _op("RELU", [out], [_t(3, [1, 4, 8])]),
    )
    assert report.reasons == {} and report.fatal
    assert report.delegated() == [] and not report.fully_delegated


def test_non_constant_strided_slice_begin_is_refused_before_parse():
    # The example: a runtime begin is an int32 runtime tensor, which
    # IsAllAllowedTensors refuses at partitioning, so Parse never sees it (a fallback).
    x, begin = _t(0, [1, 4, 4, 2]), _t(1, [4], gpu_rules.INT32)
    consts = [_t(k, [4], gpu_rules.INT32, True) for k in (2, 3)]
    report = _chain(
        _op("STRIDED_SLICE", [x, begin] + consts, [_t(4, [1, 2, 4, 2])]),
        _op("RELU", [_t(4, [1, 2, 4, 2])], [_t(5, [1, 2, 4, 2])]),
    )
    assert 0 in report.reasons and not report.fatal
    assert gpu_rules.check_op(report.ops[0], Graph.of(report.ops))["build_failure"]


def test_transpose_permutation_size_is_checked():
    x = _t(0, [6])
    op = _op("TRANSPOSE", [x, _t(1, [1], gpu_rules.INT32, True)], [_t(2, [6])])
    assert gpu_rules.check_op(op, Graph.of([op]))["build_failure"]
    assert any("permutation" in r for r in _refused(op, "ml_drift"))
    op.inputs[1] = _t(1, [2], gpu_rules.INT32, True)
    assert gpu_rules.check_op(op, Graph.of([op]))["build_failure"] == []


def test_fp16_dequantize_joins_the_gpu_only_when_every_other_op_does():
    weights, dense = _t(0, [4, 8], gpu_rules.FLOAT16, True), _t(1, [4, 8])
    x, y = _t(2, [1, 8]), _t(3, [1, 4])
    dequantize = _op("DEQUANTIZE", [weights], [dense])
    fc = _op("FULLY_CONNECTED", [x, dense], [y])
    whole = _chain(dequantize, fc)
    assert whole.fully_delegated and whole.reasons == {}
    dequantize, fc = (
        _op("DEQUANTIZE", [weights], [_t(1, [4, 8])]),
        _op("FULLY_CONNECTED", [x, _t(1, [4, 8])], [y]),
    )
    arg_max = _op("ARG_MAX", [y, _t(5, [], gpu_rules.INT32, True)], [_t(6, [1], gpu_rules.INT32)])
    partial = _chain(dequantize, fc, arg_max)
    assert 0 in partial.reasons and "FP16GraphPartitionHelper" in partial.reasons[0][0]
    assert 0 not in partial.delegated() and 1 in partial.delegated()
