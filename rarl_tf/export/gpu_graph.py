"""The exported inference graph: the model's own forward pass, for one image, its whole view
and the policy's mode, arranged so that the TFLite GPU delegate takes every op.

Nothing here computes what the model computes: the backbone, iteration 0, the spatial head's
cell terms, each step's policy (its mode, inhibition of return included), anchors, crop,
embedding, LSTM step and region scores are `RecurrentAttention.steps` (rarl_tf/model/agent.py),
the very code of `RARLModel.call`, run on the [1, h, w, C] map of one image, each step placed
by the location head's export form of its mode (`LocationHead.export_mode`). A new location
head is one module of its own and its registration (rarl_tf/model/location_heads.py), and the
export follows. What this module adds is the
exported case's arrangement: each step's scores reduced over their k regions as [1, k, C] and
the steps' maxima concatenated, instead of `call`'s [B, V, T, k, C] (the delegate refuses
rank-5 tensors), then the softmax and the exported names.

The GPU-delegate constraints live in the model's functions where they are needed, each saying
why: the crop of one image as ONE matrix product `W [1, K*s*s, h*w] @ F [1, h*w, C]`, constant
weights for boxes known when tracing (`crop.crop_one_image`, `crop.crop_constant`); the mode
as the one-hot of the FIRST maximum (`location_heads.first_arg_max`: tf.argmax's rule, ties
included; an all-black image ties every cell); anchors from a 0/1 product and an ADD of equal shapes
(`anchors.anchor_boxes`: on LiteRT's GPU accelerator, ML Drift on WebGPU, `ADD [1, 4] +
const [k, 4]` gave k copies of row 0, while `is_fully_accelerated()` was true); the query
head's position term added as [1, G*G*A] (`location_heads.QueryHead.cell_terms`); squeezes
instead of shrinking strided slices; no ARG_MAX, ONE_HOT, GATHER or validity mask.

Scores, boxes and centres equal the Keras model's on the CPU (`tests/export/test_export_gpu.py`,
a toy head added in one file included) and on the GPU accelerator run on a software Vulkan
device (`tests/inference/test_gpu_runtime.py`).
"""

from __future__ import annotations

import tensorflow as tf

from rarl_tf.inference import outputs
from rarl_tf.model.views import FULL_VIEW


class GpuInference:
    """The exported forward pass of a built RARLModel (one image, the whole view, the mode)."""

    def __init__(self, model, image_size: int):
        agent = model.agent
        if agent.policy.locations != "policy":
            raise ValueError(
                f"locations={agent.policy.locations!r}: random centres have no deterministic export"
            )
        self.model, self.agent, self.image_size = model, agent, int(image_size)

    def __call__(self, pixels):
        features = self.model.backbone(tf.cast(pixels, tf.float32), training=False)
        size = (self.image_size, self.image_size)
        maxima, boxes, locations = [], [], []
        # crop_and_resize is no TFLite builtin: traced with the matrix crop, the same crop
        # (tests/model/test_crop.py), whatever mode the model was built with.
        built_with, self.agent.crop_mode = self.agent.crop_mode, "matmul"
        try:
            for step in self.agent.steps(features, FULL_VIEW, size, export=True):
                maxima.append(tf.reduce_max(step["region_logits"], axis=1))  # [1, C]
                boxes.append(step["boxes"])  # [1, k, 4]
                locations.append(step["locations"])  # [1, 2]
        finally:
            self.agent.crop_mode = built_with
        steps, k = len(boxes), self.agent.num_anchors
        view_logits = tf.reduce_max(tf.stack(maxima, axis=1), axis=1)  # [1, C]
        return outputs.to_exported(
            {
                "probs": tf.nn.softmax(view_logits, axis=-1),
                "boxes": tf.reshape(tf.concat(boxes, axis=0), [1, steps, k, 4]),
                "centres": tf.reshape(outputs.centres(tf.concat(locations, axis=0)), [1, steps, 2]),
            }
        )


def inference_function(model, image_size: int):
    """tf.function pixels [1, N, N, 3] -> {"scores", "boxes", "centres"}, GPU-delegate ops."""
    forward = GpuInference(model, image_size)

    # No AutoGraph: the steps are a Python loop over T, unrolled as the export wants them.
    @tf.function(
        input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="pixels")],
        autograph=False,
    )
    def infer(pixels):
        return forward(pixels)

    return infer
