"""Each GPU-delegate rule of export/gpu_rules.py, shown with a tiny model that breaks it."""

import numpy as np
import pytest
import tensorflow as tf

from export import gpu_rules


def _convert(fn, *specs) -> bytes:
    concrete = tf.function(fn, input_signature=list(specs)).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _spec(*shape):
    return tf.TensorSpec(shape, tf.float32)


def _flagged(report, op_name):
    """Reasons given for the ops named `op_name` that fall back."""
    return [r for i, reasons in report.reasons.items() if report.ops[i].name == op_name
            for r in reasons]


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
        _flagged(gpu_rules.check_model(_convert(shrink, _spec(1, 3, 4, 5))), "STRIDED_SLICE"))
    assert "not 3-D or 4-D" in " ".join(
        _flagged(gpu_rules.check_model(_convert(two_d, _spec(4, 6))), "STRIDED_SLICE"))


def test_batch_matmul_right_hand_side_must_be_one_matrix():
    def batched(a, b):
        return tf.matmul(a, b)  # [9, 4, 16] @ [9, 16, 8]: one matrix per box

    def shared(a, b):
        return tf.matmul(a, b)  # [1, 36, 16] @ [1, 16, 8]

    report = gpu_rules.check_model(_convert(batched, _spec(9, 4, 16), _spec(9, 16, 8)))
    assert "[1, I, O]" in " ".join(_flagged(report, "BATCH_MATMUL"))
    assert gpu_rules.check_model(_convert(shared, _spec(1, 36, 16), _spec(1, 16, 8))
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


def _op(name, inputs, outputs, version=1, options=None):
    return gpu_rules.OpInfo(0, name, version, inputs, outputs, options)


def _t(index, shape, kind=gpu_rules.FLOAT32, const=False):
    return gpu_rules.TensorInfo(index, tuple(shape), kind, const)


def test_op_versions_above_the_parser_limit():
    op = _op("RESHAPE", [_t(0, [1, 4]), _t(1, [2], gpu_rules.INT32, True)], [_t(2, [2, 2])],
             version=2)
    assert any("version 2 > 1" in r for r in gpu_rules.check_op(op, {}, {}, [op]))
    op.version = 1
    assert gpu_rules.check_op(op, {}, {}, [op]) == []


def test_cast_types():
    op = _op("CAST", [_t(0, [1, 4], gpu_rules.FLOAT32)], [_t(1, [1, 4], gpu_rules.INT64)])
    assert any("not supported" in r for r in gpu_rules.check_op(op, {}, {}, [op]))


def test_fp16_weight_dequantize_is_folded_not_refused():
    op = _op("DEQUANTIZE", [_t(0, [8, 8], gpu_rules.FLOAT16, True)], [_t(1, [8, 8])])
    assert gpu_rules.check_op(op, {}, {}, [op]) == []


def test_cli_exit_status(tmp_path):
    def fn(x):
        return tf.argmax(x, axis=-1, output_type=tf.int32)

    path = tmp_path / "bad.tflite"
    path.write_bytes(_convert(fn, _spec(1, 5)))
    assert gpu_rules.main(["gpu_rules", str(path)]) == 1
