"""The *_paper.flags recipes against the paper's own numbers, and the adapted recipes against
what they promise (README, "VOC 2007 and COCO").

Every expected value below is written out with the sentence of the paper (Chen et al.,
"Recurrent Attentional Reinforcement Learning for Multi-label Image Recognition", AAAI 2018)
that gives it, not read from the flagfiles or the config defaults.
"""

import os

import pytest

from conftest import ROOT
from rarl_tf.config.flags import experiment_config_from_flagfile

# "we train two models with N = 512 and N = 640" ... "3 region scales with area 80 x 80,
# 160 x 160, 320 x 320 for N = 512 and 100 x 100, 200 x 200, 400 x 400 for N = 640, and 3 aspect
# ratios of 2:1, 1:1, 1:2 for both scales."
SCALES = {512: (80.0, 160.0, 320.0), 640: (100.0, 200.0, 400.0)}
PAPER = {
    # "randomly cropped with a size of (N - 64) x (N - 64)"
    "crop_margin": 64,
    "aspect_ratios": (2.0, 1.0, 0.5),
    # "The input image is first fed to the VGG16 ConvNet" ... "conv5_3 features maps"
    "backbone": "vgg16",
    "backbone_weights": "imagenet",
    # "sigma is its standard deviation and is empirically set as 0.11"
    "loc_std": 0.11,
    # "the localization network f_loc(.) is also implemented by a fully-connected layer"
    # reading "h_t = 1/k sum_r h_tr" (the trunk LSTM's state): one layer, no hidden one.
    "loc_head": "dense",
    "loc_hidden": 0,
    "policy_state": "lstm",
    "locations": "policy",
    "recurrence": "lstm",
    # eq. 5: "r_t = |g n p| / n for t = T, 0 for t < T" of the top-n predicted labels
    "reward": "top_n",
    "step_reward": "final",
    # "We set gamma as 1 in our experiments"
    "discount": 1.0,
    # "the iteration number is set as 5" (Table 6)
    "num_steps": 5,
    # eq. 8's M episodes are M training samples: one trajectory per image; no inhibition of
    # return and no location input are described.
    "trajectories": 1,
    "inhibition_radius": 0.0,
    "location_input": False,
    # "optimized using the Adam solver with a batch size of 16, an initial learning rate of
    # 0.00001, momentums of 0.9 and 0.999": one rate for every weight, constant.
    "batch_size": 16,
    "learning_rate": 1e-5,
    "policy_learning_rate": 0.0,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "lr_schedule": "constant",
    "clip_norm": 0.0,
    # "we follow (Krizhevsky ...) to perform ten-view evaluation"
    "views": 10,
}
# "Following (Wang et al. 2016), when computing the precision recall metrics, we select the top
# 3 labels for each image. We also filter out the labels with probabilities lower than a
# pre-defined threshold (0.1 in our experiments)"; COCO "train set ... validation set".
COCO = {"dataset": "coco2014", "top_k": 3, "threshold": 0.1}
VOC = {"dataset": "voc2007"}
PAPER_FILES = {
    "voc_paper.flags": (512, VOC),
    "voc640_paper.flags": (640, VOC),
    "coco_paper.flags": (512, COCO),
    "coco640_paper.flags": (640, COCO),
}


def _values(path: str) -> dict:
    config = experiment_config_from_flagfile(os.path.join(ROOT, path))
    return {
        **vars(config.model),
        **vars(config.data),
        **vars(config.train),
        "views": config.eval.views,
        "top_k": config.eval.top_k,
        "threshold": config.eval.threshold,
    }


@pytest.mark.parametrize("path", sorted(PAPER_FILES))
def test_paper_flagfiles_are_the_papers_recipes(path):
    size, dataset = PAPER_FILES[path]
    expected = {**PAPER, **dataset, "image_size": size, "anchor_sizes": SCALES[size]}
    values = _values(path)
    assert {key: values[key] for key in expected} == expected


@pytest.mark.parametrize(
    "path, size, policy_rate",
    [
        ("voc.flags", 512, 3e-4),
        ("voc640.flags", 640, 3e-4),
        ("coco.flags", 512, 1e-4),
        ("coco640.flags", 640, 1e-4),
    ],
)
def test_adapted_recipes_keep_the_paper_but_for_the_policy(path, size, policy_rate):
    """The policy that learned best on digits (spatial head, K > 1, log-likelihood reward,
    inhibition of return), the policy's own rate, and the paper's everything else."""
    values = _values(path)
    policy = {
        "loc_head": "spatial",
        "policy_state": "lstm",
        "reward": "log_likelihood",
        "inhibition_radius": 0.3,
        "location_input": True,
        "policy_learning_rate": policy_rate,
    }
    assert {key: values[key] for key in policy} == policy
    assert values["trajectories"] > 1 and values["loc_hidden"] > 0
    # The grid's spacing 2 / (G - 1) in the view frame is of sigma's order (0.5 to 2 sigma).
    assert 0.5 <= 2 / (values["loc_grid"] - 1) / values["loc_std"] <= 2
    paper_path = path.replace(".flags", "_paper.flags")
    paper = _values(paper_path)
    changed = {key for key in values if values[key] != paper[key]}
    assert changed == {
        "loc_head",
        "inhibition_radius",
        "reward",
        "location_input",
        "trajectories",
        "loc_hidden",
        "loc_grid",
        "policy_learning_rate",
    }
    assert values["image_size"] == size
