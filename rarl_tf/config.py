"""Frozen experiment configuration.

Entry points turn flags into an `ExperimentConfig`; library code receives plain values from it.
Defaults are the paper's VOC 512 recipe; `digits.flags` overrides them for the embedded default.
The config is written to `model_dir/config.json` so evaluation, prediction and export rebuild the
exact model that was trained.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

BACKBONES = ("vgg16", "small_vgg")
LR_SCHEDULES = ("constant", "cosine")
REGION_POOLS = ("flatten", "max")
REWARDS = ("top_n", "log_likelihood")
STEP_REWARDS = ("final", "improvement")
LOC_HEADS = ("dense", "spatial")
# Ablations of the paper's Tables 3-4 and a global-pooling baseline (tools/ablate.py).
ARCHITECTURES = ("rarl", "global")
LOCATIONS = ("policy", "random")
RECURRENCES = ("lstm", "localisation_only", "none")
# Names of rarl_tf/data/sources.py's SOURCES (kept here so flags are checked before TF loads).
DATASETS = ("cluttered_digits", "cluttered_digits/small", "voc2007", "coco2014", "voc_dir")


REMOVED_MODEL_KEYS = ("reinforce_weight", "baseline_weight")
# --max_pixels: images whose header declares more are refused before decoding (a 180-byte PNG
# can declare 60,000 x 60,000 pixels). 50 M is about 7,000 x 7,000, far above any dataset here.
DEFAULT_MAX_PIXELS = 50_000_000


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network and the agent (design.md, data flow 3-5)."""

    backbone: str = "vgg16"
    # "imagenet" (Keras downloads it), "none", or a path to a .weights.h5 file.
    backbone_weights: str = "imagenet"
    backbone_widths: tuple[int, ...] = (32, 64, 128)  # small_vgg only
    image_size: int = 512  # N: images are resized to N x N
    crop_margin: int = 64  # m: training crops (N - m) x (N - m)
    anchor_sizes: tuple[float, ...] = (80.0, 160.0, 320.0)  # sqrt(area) in pixels
    aspect_ratios: tuple[float, ...] = (2.0, 1.0, 0.5)  # width / height
    crop_size: int = 7  # s
    region_pool: str = "flatten"  # flatten (paper) | max: how a region's s x s grid is embedded
    embed_dim: int = 512
    lstm_units: int = 512
    num_steps: int = 5  # T
    loc_std: float = 0.11  # sigma, in the [-1, 1] view frame
    discount: float = 1.0  # gamma
    # The location policy (README, "The location policy"); the defaults are the paper's.
    reward: str = "top_n"  # top_n (eq. 5) | log_likelihood of the true labels
    # final (eq. 6: reward at T only) | improvement: step t earns R_t - R_(t-1)
    step_reward: str = "final"
    trajectories: int = 1  # K sampled per training image; K > 1: leave-one-out baseline
    location_input: bool = False  # feed l_t into the LSTM with each region (as RAM does)
    loc_hidden: int = 0  # hidden ReLU units in f_loc (0: the paper's one layer)
    context_grid: bool = False  # iteration 0 embeds the whole view's flattened s x s grid
    # dense (paper: f_loc = FC(h_t)) | spatial: cells of a G x G grid of the view score
    # themselves from (F_g, h_t); the mean is their softmax-weighted position
    loc_head: str = "dense"
    loc_grid: int = 7  # G
    # rho (view frame) of the spatial head's inhibition of return; 0: none
    inhibition_radius: float = 0.0
    # rarl | global: backbone, global average pooling, one dense layer (the "VeryDeep" baseline).
    architecture: str = "rarl"
    # policy (the paper) | random: uniform random centres, same anchors (Table 3's "random").
    locations: str = "policy"
    # lstm (Ours-C) | localisation_only: LSTM places regions, an independent classifier scores
    # them (Ours-B) | none: no LSTM, locations from the regions' mean embedding (Ours-A).
    recurrence: str = "lstm"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are fed."""

    dataset: str = "voc2007"
    # tensorflow-datasets' data_dir, or (dataset voc_dir) the VOC folder itself.
    data_dir: str | None = None
    download: bool = False  # let tensorflow-datasets download and prepare voc2007 / coco2014
    shuffle_buffer: int = 2048
    # Images over this many pixels (read from the header) are skipped, counted and named.
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation (paper: Adam, lr 1e-5, betas 0.9 / 0.999, batch 16)."""

    batch_size: int = 16
    epochs: int = 20
    learning_rate: float = 1e-5
    lr_schedule: str = "constant"  # constant | cosine
    warmup_epochs: float = 0.0
    beta_1: float = 0.9
    beta_2: float = 0.999
    steps_per_epoch: int | None = None  # None: one pass over the training split
    checkpoint_every_steps: int = 500
    seed: int = 0
    # Compile the training step with XLA (the crop becomes `crop_regions_matmul`, which XLA
    # compiles; crop_and_resize has no XLA kernel). Off: slower on the CPUs measured (README).
    jit_compile: bool = False


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The paper's evaluation protocol."""

    views: int = 1  # 1 (the whole N x N image) or 10 (corners, centre and their mirrors)
    batch_size: int = 16
    top_k: int = 3
    threshold: float = 0.1
    voc07_ap: bool = False  # 11-point AP of the VOC2007 devkit instead of sklearn's area


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    class_names: tuple[str, ...] = ()

    def validate(self) -> None:
        """Raises ValueError naming the flag, its value and what is allowed."""
        m, t, e = self.model, self.train, self.eval
        weights_ok = m.backbone_weights in ("imagenet", "none") or (
            m.backbone_weights.endswith(".weights.h5") and os.path.isfile(m.backbone_weights))
        checks = [
            (self.data.dataset in DATASETS, "dataset", self.data.dataset,
             f"one of {DATASETS}"),
            (self.data.dataset != "voc_dir" or bool(self.data.data_dir), "data_dir",
             self.data.data_dir, "the VOC folder (holding JPEGImages/, Annotations/, "
             "ImageSets/Main/) when --dataset=voc_dir"),
            (self.data.shuffle_buffer >= 1, "shuffle_buffer", self.data.shuffle_buffer,
             "an integer >= 1"),
            (self.data.max_pixels >= 1, "max_pixels", self.data.max_pixels,
             "an integer >= 1 (pixels per image)"),
            (m.backbone in BACKBONES, "backbone", m.backbone, f"one of {BACKBONES}"),
            (weights_ok, "backbone_weights", m.backbone_weights,
             "imagenet, none, or the path of an existing .weights.h5 file"),
            (m.backbone != "small_vgg" or m.backbone_weights == "none", "backbone_weights",
             m.backbone_weights, "none for backbone small_vgg (it is trained from scratch)"),
            (m.image_size > 0, "image_size", m.image_size, "a positive number of pixels"),
            (0 <= m.crop_margin < m.image_size, "crop_margin", m.crop_margin,
             f"0 <= m < image_size ({m.image_size})"),
            (len(m.anchor_sizes) > 0 and min(m.anchor_sizes) > 0, "anchor_sizes",
             list(m.anchor_sizes), "one or more positive pixel sizes"),
            (len(m.aspect_ratios) > 0 and min(m.aspect_ratios) > 0, "aspect_ratios",
             list(m.aspect_ratios), "one or more positive width/height ratios"),
            # The paper pairs 3 scales with 3 ratios (k = 9); lists of different lengths are
            # almost always a typo in one of them.
            (len(m.aspect_ratios) == len(m.anchor_sizes), "aspect_ratios",
             list(m.aspect_ratios), f"as many ratios as --anchor_sizes has sizes "
             f"({len(m.anchor_sizes)}: {list(m.anchor_sizes)})"),
            (m.crop_size >= 1, "crop_size", m.crop_size, "an integer >= 1"),
            (m.region_pool in REGION_POOLS, "region_pool", m.region_pool,
             f"one of {REGION_POOLS}"),
            (m.architecture in ARCHITECTURES, "architecture", m.architecture,
             f"one of {ARCHITECTURES}"),
            (m.locations in LOCATIONS, "locations", m.locations, f"one of {LOCATIONS}"),
            (m.recurrence in RECURRENCES, "recurrence", m.recurrence, f"one of {RECURRENCES}"),
            (m.num_steps >= 1, "num_steps", m.num_steps, "T >= 1"),
            (m.loc_std > 0, "loc_std", m.loc_std, "sigma > 0"),
            (0 <= m.discount <= 1, "discount", m.discount, "0 <= gamma <= 1"),
            (t.batch_size >= 1, "batch_size", t.batch_size, "an integer >= 1"),
            (t.epochs >= 1, "epochs", t.epochs, "an integer >= 1"),
            (t.learning_rate > 0, "learning_rate", t.learning_rate, "> 0"),
            (t.lr_schedule in LR_SCHEDULES, "lr_schedule", t.lr_schedule,
             f"one of {LR_SCHEDULES}"),
            (t.steps_per_epoch is None or t.steps_per_epoch >= 1, "steps_per_epoch",
             t.steps_per_epoch, "an integer >= 1"),
            (t.checkpoint_every_steps >= 1, "checkpoint_every_steps", t.checkpoint_every_steps,
             "an integer >= 1"),
            (e.views in (1, 10), "views", e.views, "1 or 10"),
            (e.top_k >= 1, "top_k", e.top_k, "an integer >= 1"),
            (0 <= e.threshold <= 1, "threshold", e.threshold, "a probability in [0, 1]"),
        ]
        for ok, flag, value, allowed in checks + _policy_checks(m):
            if not ok:
                raise ValueError(f"--{flag}={value} is not allowed: expected {allowed}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ExperimentConfig":
        def build(kind, values):
            fields = {f.name: f for f in dataclasses.fields(kind)}
            if kind is ModelConfig:
                # Written by runs before 2026-11-26; under Adam they had no effect (each scaled
                # the only loss of its head), so such runs load as if they were never set.
                values = {k: v for k, v in values.items() if k not in REMOVED_MODEL_KEYS}
            unknown = set(values) - set(fields)
            if unknown:
                raise ValueError(f"unknown {kind.__name__} keys {sorted(unknown)}")
            return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

        return cls(model=build(ModelConfig, raw.get("model", {})),
                   data=build(DataConfig, raw.get("data", {})),
                   train=build(TrainConfig, raw.get("train", {})),
                   eval=build(EvalConfig, raw.get("eval", {})),
                   class_names=tuple(raw.get("class_names", ())))


def _policy_checks(m: ModelConfig) -> list[tuple]:
    """(ok, flag, value, allowed) for the location-policy fields."""
    return [
        (m.reward in REWARDS, "reward", m.reward, f"one of {REWARDS}"),
        (m.step_reward in STEP_REWARDS, "step_reward", m.step_reward,
         f"one of {STEP_REWARDS}"),
        (m.trajectories >= 1, "trajectories", m.trajectories, "an integer K >= 1"),
        (m.loc_head in LOC_HEADS, "loc_head", m.loc_head, f"one of {LOC_HEADS}"),
        (m.loc_grid >= 2, "loc_grid", m.loc_grid, "an integer G >= 2"),
        (m.inhibition_radius == 0 or (m.inhibition_radius > 0 and m.loc_head == "spatial"),
         "inhibition_radius", m.inhibition_radius,
         "0, or > 0 with --loc_head=spatial (it acts on the spatial head's cells)"),
        (m.loc_hidden >= 0, "loc_hidden", m.loc_hidden, "an integer >= 0 (0: no layer)"),
    ]


CONFIG_FILE = "config.json"


def save_config(config: ExperimentConfig, model_dir: str) -> None:
    """Writes `model_dir/config.json` whole (a reader never sees half of it)."""
    from rarl_tf import run_files

    os.makedirs(model_dir, exist_ok=True)
    run_files.write_text(os.path.join(model_dir, CONFIG_FILE), config.to_json())


def load_config(model_dir: str) -> ExperimentConfig:
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: --model_dir must be a directory written by "
                                f"`python -m rarl_tf.train`")
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read().decode("utf-8"))
        return ExperimentConfig.from_dict(raw)
    # Truncated or garbled JSON, or JSON that is not a config (wrong keys, types or shape).
    except (ValueError, TypeError, AttributeError) as err:
        from rarl_tf.run_files import CorruptFile

        raise CorruptFile(f"{path} is not a readable run configuration ({err}); it is written by "
                          f"`python -m rarl_tf.train`: restore it from a copy, or delete it and "
                          f"rerun that command with the run's exact flags to write it again "
                          f"(the checkpoints are kept)") from None
