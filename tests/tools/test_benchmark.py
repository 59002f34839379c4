"""tools.benchmark measures every figure the issue asks for (no timing is asserted)."""

import keras
import numpy as np
import pytest

from conftest import tiny_model_config
from tools.benchmark import markdown, measure_size


# Times every path of a tiny model and exports it (~17 s): a tool's test, run deliberately.
@pytest.mark.slow
def test_measure_size_reports_every_figure_and_tflite_agrees_with_keras():
    knobs = {
        "repeats": 1,
        "warmup": 1,
        "proposals": 8,
        "proposal_batch": 4,
        "proposal_side": 0,
        "train_batch": 2,
        "breakdown": True,
    }
    result = measure_size(tiny_model_config(), 10, knobs, keras.utils.Progbar(4))
    for key in (
        "backbone_forward_s",
        "backbone_forward_xla_s",
        "rarl_one_view_s",
        "rarl_one_view_xla_s",
        "rarl_ten_views_s",
        "naive_ten_views_s",
        "proposal_per_image_s",
        "tflite_one_view_s",
        "train_rarl_old_images_per_s",
        "train_rarl_new_images_per_s",
        "train_global_old_images_per_s",
        "train_global_new_images_per_s",
    ):
        assert np.isfinite(result[key]) and result[key] > 0, key
    assert result["proposal_per_image_s"] == result["proposal_chunk_s"] * 2  # 8 = 2 chunks of 4
    assert set(result["ratios"]) == {
        "attention_overhead",
        "attention_overhead_new",
        "tenview_ratio",
        "naive_tenview_ratio",
        "proposal_speedup",
        "tflite_vs_tf",
        "train_rarl_new_vs_old",
        "train_rarl_new_vs_global_old",
    }
    assert set(result["train_breakdown_s"]) == {
        "backbone",
        "crops",
        "embedding",
        "lstm",
        "heads",
        "loss",
        "optimizer",
        "step",
    }
    assert all(v > 0 for v in result["train_breakdown_s"].values())
    assert result["ratios"]["tenview_ratio"] == (
        result["rarl_ten_views_s"] / result["rarl_one_view_s"]
    )
    # The timed TFLite model is the Keras model: same scores.
    assert result["tflite_max_abs_diff"] < 1e-4
    table = markdown({"sizes": {"tiny": result}})
    assert "| **proposal_speedup** |" in table and "| tiny |" in table
    assert "| lstm |" in table
