"""Backbone weights: `--backbone_weights=PATH` loads a local VGG16 file (works offline)."""

import keras
import numpy as np
import pytest

from rarl_tf.config.experiment import ExperimentConfig, ModelConfig
from rarl_tf.config.flags import experiment_config_from_flagfile
from rarl_tf.model.backbone import vgg16_conv5_3


def test_vgg16_loads_local_weights_file(tmp_path):
    keras.utils.set_random_seed(3)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    source.save_weights(path)
    loaded = vgg16_conv5_3(path)
    want = source.get_layer("block5_conv3").kernel.numpy()
    trunk = loaded.get_layer("vgg16_trunk")
    np.testing.assert_array_equal(trunk.get_layer("block5_conv3").kernel.numpy(), want)
    fresh = vgg16_conv5_3(None)
    assert not np.array_equal(
        fresh.get_layer("vgg16_trunk").get_layer("block5_conv3").kernel.numpy(), want
    )
    # conv5_3 has stride 16 and 512 channels.
    assert loaded(np.zeros((1, 64, 96, 3), np.float32)).shape == (1, 4, 6, 512)


@pytest.mark.parametrize("weights", ["/no/such/file.weights.h5", "vgg16.h5", "random"])
def test_bad_backbone_weights_are_rejected_before_any_work(weights, tmp_path):
    flagfile = tmp_path / "bad.flags"
    flagfile.write_text(f"--backbone=vgg16\n--backbone_weights={weights}\n")
    with pytest.raises(ValueError, match=f"--backbone_weights={weights} is not allowed"):
        experiment_config_from_flagfile(str(flagfile))


def test_config_checks_values_without_reading_files():
    # A saved run's config names a weights file that may be gone: its values are still valid.
    config = ExperimentConfig(
        model=ModelConfig(backbone="vgg16", backbone_weights="/no/such/file.weights.h5")
    )
    config.validate()
    bad = ExperimentConfig(model=ModelConfig(backbone="vgg16", backbone_weights="vgg16.h5"))
    with pytest.raises(ValueError, match="--backbone_weights=vgg16.h5 is not allowed"):
        bad.validate()
