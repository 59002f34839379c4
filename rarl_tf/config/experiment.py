"""Frozen experiment configuration: the one place each setting, its flag and its choices live.

Entry points turn flags into an `ExperimentConfig`; library code receives plain values from it.
Every field of the section dataclasses (`ModelConfig`, `DataConfig`, `TrainConfig`,
`EvalConfig`) is declared with `option(default, help, ...)`: `rarl_tf.config.flags` generates its
`--flag` from it (type from the annotation; tuples are comma-separated lists), builds the config
from the parsed flags, and `ExperimentConfig.validate` checks its `choices`. Adding a setting is
adding a field here (and the code that uses it).

Defaults are the paper's VOC 512 recipe; `digits.flags` overrides them for the embedded default.
The config is written to `model_dir/config.json` so evaluation, prediction and export rebuild the
exact model that was trained. There its model is in sections (`MODEL_SECTIONS`: backbone,
regions, agent, policy, the policy's location head as a one-of); files written before 2026-12-06
hold the same fields flat, and read the same (`config/compat.py`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Iterator

from rarl_tf.config import compat, location_heads
from rarl_tf.config.datasets import DATASETS

BACKBONES = ("vgg16", "small_vgg")
LR_SCHEDULES = ("constant", "cosine")
REGION_POOLS = ("flatten", "max")
REWARDS = ("top_n", "log_likelihood")
STEP_REWARDS = ("final", "improvement")
# Ablations of the paper's Tables 3-4 and a global-pooling baseline (tools/ablate.py).
ARCHITECTURES = ("rarl", "global")
LOCATIONS = ("policy", "random", "random_inhibited")
RECURRENCES = ("lstm", "localisation_only", "none")
# What the location head reads: the trunk LSTM's h_t (the paper), a recurrent state of the
# policy's own that REINFORCE trains, or nothing (a saliency map of the view).
POLICY_STATES = ("lstm", "own", "none")
EVAL_VIEWS = (1, 10)
# tf.distribute strategies of rarl_tf/training/distribute.py (here so train.py's flag needs no TF).
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


# --max_pixels: images whose header declares more are refused before decoding (a 180-byte PNG
# can declare 60,000 x 60,000 pixels). 50 M is about 7,000 x 7,000, far above any dataset here.
DEFAULT_MAX_PIXELS = 50_000_000


def check_choices(**arguments: tuple[Any, tuple]) -> None:
    """Raises ValueError naming the first argument whose value is not one of those allowed:
    `check_choices(reward=(reward, REWARDS))`, the check of every layer's string arguments."""
    for name, (value, allowed) in arguments.items():
        if value not in allowed:
            raise ValueError(f"{name}={value!r}; expected one of {allowed}")


def option(
    default: Any,
    help: str,
    *,
    choices: tuple = (),
    flag: str | None = None,
    enum: bool = False,
    minimum: float | None = None,
) -> Any:
    """A config field and its command-line flag.

    Args:
      default: the field's default (and the flag's).
      help: the flag's help line.
      choices: the allowed values, checked by `ExperimentConfig.validate` (one tuple per set).
      flag: the flag's name where it is not the field's (`--eval_batch_size`).
      enum: also refuse other values while parsing (an absl enum flag, `<a|b>` in --help).
      minimum: the smallest value allowed (None: not checked here), checked by `validate`.
    """
    return dataclasses.field(
        default=default,
        metadata={
            "help": help,
            "choices": tuple(choices),
            "flag": flag,
            "enum": enum,
            "minimum": minimum,
        },
    )


# config.json's "model" object in sections (2026-12-06): section -> its ModelConfig fields. The
# location head is the policy's "head", a one-of: {"type": --loc_head, "<type>": its settings}
# (rarl_tf/config/location_heads.py), each setting with one meaning (--loc_hidden is a normal
# head's "hidden" and a cells head's "width"). Every field is in one section or HEAD_FIELDS.
MODEL_SECTIONS = {
    "backbone": ("backbone", "backbone_weights", "backbone_widths", "image_size", "crop_margin"),
    "regions": ("anchor_sizes", "aspect_ratios", "crop_size", "region_pool", "embed_dim"),
    "agent": (
        "architecture",
        "lstm_units",
        "num_steps",
        "recurrence",
        "location_input",
        "context_grid",
        "discount",
        "reward",
        "step_reward",
        "trajectories",
    ),
    "policy": (
        "locations",
        "loc_std",
        "loc_grid",
        "inhibition_radius",
        "inhibition_anneal_epochs",
        "policy_state",
        "policy_units",
    ),
}
HEAD_FIELDS = ("loc_head", "loc_hidden")


def flag_name(field: dataclasses.Field) -> str:
    """The command-line name of a config field."""
    return field.metadata.get("flag") or field.name


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network and the agent: flat for now, grouped by the comments below."""

    # Backbone and input size.
    backbone: str = option("vgg16", "vgg16 (conv5_3) or small_vgg.", choices=BACKBONES)
    # "imagenet" (Keras downloads it), "none", or a path to a .weights.h5 file.
    backbone_weights: str = option("imagenet", "imagenet, none, or a path to a .weights.h5 file.")
    backbone_widths: tuple[int, ...] = option(  # small_vgg only
        (32, 64, 128), "Channel widths of small_vgg's blocks."
    )
    image_size: int = option(512, "N: images are resized to N x N pixels.")
    crop_margin: int = option(  # training crops (N - m) x (N - m)
        64, "m: training crops and evaluation views are (N - m) pixels wide."
    )

    # Anchors and regions.
    anchor_sizes: tuple[float, ...] = option(  # sqrt(area) in pixels
        (80.0, 160.0, 320.0), "Square roots of the anchor areas, in pixels."
    )
    aspect_ratios: tuple[float, ...] = option(  # width / height
        (2.0, 1.0, 0.5), "Anchor width / height ratios."
    )
    crop_size: int = option(7, "s: regions are resampled to s x s cells.")
    # flatten (paper) | max: how a region's s x s grid is embedded.
    region_pool: str = option(
        "flatten",
        "flatten: dense layer over the s x s grid (paper); max: max over the grid first.",
        choices=REGION_POOLS,
        enum=True,
    )
    embed_dim: int = option(512, "Width of the region embedding.")

    # The agent: recurrence and the paper's ablations (Tables 3-4).
    lstm_units: int = option(512, "Width of the LSTM state.")
    num_steps: int = option(5, "T: attention iterations.")
    # rarl | global: backbone, global average pooling, one dense layer (the "VeryDeep" baseline).
    architecture: str = option(
        "rarl",
        "rarl, or global (backbone + global pooling + dense: the baseline).",
        choices=ARCHITECTURES,
    )
    locations: str = option(
        "policy",
        "policy (learned), random (uniform centres: the paper's Table 3), or "
        "random_inhibited (random centres with --inhibition_radius's inhibition of return).",
        choices=LOCATIONS,
    )
    recurrence: str = option(
        "lstm",
        "lstm (paper, Ours-C), localisation_only (the LSTM only places regions, an independent "
        "region classifier scores them: Ours-B), or none (no LSTM: locations from the regions' "
        "mean embedding, Ours-A): the paper's Table 4.",
        choices=RECURRENCES,
    )

    # The location policy and its reward (docs/location_policy.md); defaults: the paper.
    loc_std: float = option(0.11, "sigma of the location policy ([-1, 1] frame).")
    discount: float = option(1.0, "gamma, the reward discount.")
    reward: str = option(  # top_n (eq. 5) | log_likelihood of the true labels
        "top_n",
        "top_n (the paper's eq. 5) or log_likelihood (of the true labels; does not saturate).",
        choices=REWARDS,
    )
    # final (eq. 6: reward at T only) | improvement: step t earns R_t - R_(t-1)
    step_reward: str = option(
        "final",
        "final (the paper: the reward at T only) or improvement (step t earns what it "
        "added to the reward).",
        choices=STEP_REWARDS,
    )
    trajectories: int = option(  # K > 1: leave-one-out baseline
        1,
        "K location trajectories per training image (one backbone pass); K > 1 uses a "
        "leave-one-out baseline.",
    )
    location_input: bool = option(  # as RAM does
        False, "Feed l_t into the LSTM with every region."
    )
    # Each head's own setting (rarl_tf/config/location_heads.py): a normal head's hidden layer,
    # a cells head's width; one flag, as recipes before the heads' sections wrote it.
    loc_hidden: int = option(
        0,
        "dense head: hidden ReLU units (0: one layer, the paper); spatial and query heads: the "
        "width of their cell terms (0: --embed_dim).",
    )
    context_grid: bool = option(
        False,
        "Embed the whole view of iteration 0 from its flattened s x s grid (keeps where "
        "things are).",
    )
    # The registered heads (rarl_tf/config/location_heads.py; their equations in
    # rarl_tf/model/location_heads.py), checked in `_policy_checks`: a head registered after
    # this module is read is a choice too.
    loc_head: str = option(
        "dense",
        "A registered location head: dense (the paper's f_loc(h_t)), spatial (cells of a "
        "G x G grid of the view score themselves) or query (the state is a query against cell "
        "keys that carry their position).",
    )
    loc_grid: int = option(7, "G: side of the spatial head's grid.")
    inhibition_radius: float = option(
        0.0,
        "rho ([-1, 1] view frame) of the spatial head's inhibition of return (and of "
        "--locations=random_inhibited); 0: none.",
    )
    # The rule trains the classifier on well-spread glimpses early on, then gives way to the
    # policy's own state (which must then learn not to look twice).
    inhibition_anneal_epochs: float = option(
        0.0,
        "Anneal the inhibition of return's strength linearly from 1 to 0 over this many "
        "training epochs (0: constant); the trained model keeps none of it.",
        minimum=0.0,
    )
    policy_state: str = option(
        "lstm",
        "What the location head reads: lstm (the trunk's h_t, the paper), own (a state of the "
        "policy's own, s_t = GRU([pos(l_t), h_t], s_t-1), trained by REINFORCE) or none (the "
        "head reads no state: saliency only).",
        choices=POLICY_STATES,
    )
    policy_units: int = option(64, "Width of the policy's own state (--policy_state=own).")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are fed."""

    dataset: str = option(
        "voc2007", "Data source name (see rarl_tf/config/datasets.py).", choices=tuple(DATASETS)
    )
    # tensorflow-datasets' data_dir, or (dataset voc_dir) the VOC folder itself.
    data_dir: str | None = option(
        None, "tensorflow-datasets data_dir, or the folder of a VOC-layout dataset."
    )
    download: bool = option(
        False,
        "Let tensorflow-datasets download and prepare voc2007 / "
        "coco2014 into --data_dir if they are not there.",
    )
    shuffle_buffer: int = option(2048, "Shuffle buffer, in images.")
    # Images over this many pixels (read from the header) are skipped, counted and named.
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "Skip (and count) images whose header declares "
        "more pixels than this, before decoding them.",
    )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation (paper: Adam, lr 1e-5, betas 0.9 / 0.999, batch 16)."""

    batch_size: int = option(16, "Global batch size.")
    epochs: int = option(20, "Training epochs.")
    learning_rate: float = option(1e-5, "Adam learning rate (peak).")
    # The location head, the policy's own state and the baseline start from scratch and learn
    # from REINFORCE alone (rarl_tf/model/optimizer.py); 0 keeps the paper's single rate.
    policy_learning_rate: float = option(
        0.0,
        "Adam learning rate (peak, same schedule) of the location policy and its baseline; "
        "0: --learning_rate.",
        minimum=0.0,
    )
    lr_schedule: str = option(
        "constant", "Learning-rate schedule.", choices=LR_SCHEDULES, enum=True
    )
    warmup_epochs: float = option(0.0, "Linear warm-up, in epochs.")
    beta_1: float = option(0.9, "Adam beta_1.")
    beta_2: float = option(0.999, "Adam beta_2.")
    steps_per_epoch: int | None = option(
        None, "Steps per epoch; default one pass over the training split."
    )
    checkpoint_every_steps: int = option(500, "Save a resumable checkpoint every this many steps.")
    seed: int = option(0, "Seed of data order, augmentation, init and sampling.")
    # The seed alone leaves kernels free to sum in any order: the quick start run twice with
    # one seed scored 98.95 and 98.46 mAP (issue 31). Off by default: it costs time
    # (docs/experiments.md, "Same-seed spread").
    deterministic: bool = option(
        False,
        "Op determinism (tf.config.experimental.enable_op_determinism): a rerun with the same "
        "--seed computes the same losses and metrics; slower.",
    )
    # crop_and_resize has no XLA kernel. Off by default: slower on the CPUs measured
    # (docs/experiments.md, "Speed").
    jit_compile: bool = option(
        False,
        "Compile the training step with XLA (the crop becomes the "
        'matmul crop; see docs/experiments.md, "Speed").',
    )
    clip_norm: float = option(
        0.0,
        "Clip the gradient's global norm to this before Adam; 0: no clipping (the paper).",
        minimum=0.0,
    )


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The paper's evaluation protocol."""

    # 1 (the whole N x N image) or 10 (corners, centre and their mirrors)
    views: int = option(1, "Evaluation views: 1 (whole image) or 10.", choices=EVAL_VIEWS)
    batch_size: int = option(16, "Evaluation batch size.", flag="eval_batch_size")
    top_k: int = option(3, "Labels per image for CP/CR/CF1/OP/OR/OF1.")
    threshold: float = option(0.1, "Drop top-k labels scoring below this.")
    # 11-point AP of the VOC2007 devkit instead of sklearn's area
    voc07_ap: bool = option(False, "11-point AP of the VOC2007 devkit.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    class_names: tuple[str, ...] = ()

    def validate(self) -> None:
        """Raises ValueError naming the flag, its value and what is allowed.

        Checks the values alone: whether a named file exists is the entry point's check
        (`rarl_tf.config.flags`), as a saved run no longer needs its --backbone_weights file.
        """
        checks = [
            *self._choice_checks(),
            *_data_checks(self.data),
            *_model_checks(self.model),
            *_policy_checks(self.model),
            *_train_eval_checks(self.train, self.eval),
            *_size_checks(self.model, self.train, self.eval),
        ]
        for ok, flag, value, allowed in checks:
            if not ok:
                raise ValueError(f"--{flag}={value} is not allowed: expected {allowed}")

    def _choice_checks(self) -> Iterator[tuple]:
        """(ok, flag, value, allowed) for every field declared with `choices` or `minimum`."""
        for name in sections():
            section = getattr(self, name)
            for field in dataclasses.fields(section):
                value, choices = getattr(section, field.name), field.metadata.get("choices")
                minimum = field.metadata.get("minimum")
                if choices:
                    yield value in choices, flag_name(field), value, f"one of {choices}"
                if minimum is not None and value is not None:
                    yield value >= minimum, flag_name(field), value, f">= {minimum}"

    def to_json(self) -> str:
        """config.json's text: a section per dataclass, the model's in its own sections."""
        raw = dataclasses.asdict(self)
        raw["model"] = model_sections(raw["model"])
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ExperimentConfig":
        """The config a `config.json` holds, of this version or an older one.

        Each value is checked against its field's type (`typed_value`) and the whole config
        against `validate`, the checks the flags go through.

        Raises:
          ValueError: naming the section and field, the value and the type expected; or an
            unknown section or key.
        """
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object of sections, not {type(raw).__name__}")
        known = {**sections(), "class_names": None}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(f"unknown sections {unknown}: expected only {sorted(known)}")
        names = raw.get("class_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"class_names = {json.dumps(names)[:100]} is not allowed: expected "
                f"a list of strings"
            )
        config = cls(
            **{
                name: _section_from_dict(name, kind, raw.get(name, {}))
                for name, kind in sections().items()
            },
            class_names=tuple(names),
        )
        config.validate()
        return config


def _section_from_dict(name: str, kind: type, values) -> Any:
    """The section dataclass `kind` from its JSON object, each value checked for its type."""
    if not isinstance(values, dict):
        raise ValueError(
            f"section {name} = {json.dumps(values)[:100]} is not allowed: expected "
            f"a JSON object of {kind.__name__} fields"
        )
    where = {key: f"{name}.{key}" for key in values}
    if kind is ModelConfig:
        values, where = _model_fields(values)
    typed = {field.name: (field, base, is_list) for field, base, is_list in typed_fields(kind)}
    unknown = set(values) - set(typed)
    if unknown:
        raise ValueError(f"unknown {kind.__name__} keys {sorted(unknown)}")
    return kind(
        **{key: typed_value(where[key], value, *typed[key]) for key, value in values.items()}
    )


def model_sections(fields: dict[str, Any]) -> dict[str, dict]:
    """ModelConfig's fields ({name: value}, all or some) as config.json's model sections."""
    nested = {
        section: {name: fields[name] for name in names if name in fields}
        for section, names in MODEL_SECTIONS.items()
    }
    if "loc_head" in fields or "loc_hidden" in fields:
        name = fields.get("loc_head", ModelConfig.loc_head)
        head = {"type": name}
        if name in location_heads.names():
            head[name] = location_heads.settings_from_flags(name, fields.get("loc_hidden", 0))
        nested["policy"]["head"] = head
    return nested


def _model_fields(values: dict) -> tuple[dict[str, Any], dict[str, str]]:
    """config.json's model, in sections or flat as before 2026-12-06 -> (ModelConfig's fields
    {name: value}, where each was {name: "model.section.key"}). A flat file is read through its
    sections, as the file would be written today; keys no section holds are kept, to be named."""
    if not compat.flat_model_section(values, MODEL_SECTIONS):
        return _flat_model(values)
    flat = compat.model_section(values)
    placed = set(HEAD_FIELDS).union(*MODEL_SECTIONS.values())
    unplaced = {key: value for key, value in flat.items() if key not in placed}
    fields, where = _flat_model(model_sections(flat))
    return {**fields, **unplaced}, {**where, **{key: f"model.{key}" for key in unplaced}}


def _flat_model(nested: dict) -> tuple[dict[str, Any], dict[str, str]]:
    """config.json's model sections -> (ModelConfig's fields {name: value}, where each was:
    {name: "model.section.key"} for the messages)."""
    values, where = {}, {}
    for section, entries in nested.items():
        if section not in MODEL_SECTIONS or not isinstance(entries, dict):
            raise ValueError(
                f"model.{section} = {json.dumps(entries)[:100]} is not allowed: expected one of "
                f"the sections {sorted(MODEL_SECTIONS)}, each a JSON object"
            )
        for key, value in entries.items():
            if section == "policy" and key == "head":
                values.update(_head_fields(value))
                kind = values.get("loc_head")
                where.update(
                    loc_head="model.policy.head.type", loc_hidden=f"model.policy.head.{kind}"
                )
            elif key not in MODEL_SECTIONS[section]:
                raise ValueError(f"unknown ModelConfig keys ['{section}.{key}']")
            else:
                values[key], where[key] = value, f"model.{section}.{key}"
    return values, where


def _head_fields(head) -> dict[str, Any]:
    """The policy's "head" one-of -> {"loc_head": its type, "loc_hidden": its setting}."""
    name = head.get("type") if isinstance(head, dict) else None
    if not isinstance(name, str):
        raise ValueError(
            f"model.policy.head = {json.dumps(head)[:100]} is not allowed: expected "
            f'{{"type": a location head, "<type>": its settings}}'
        )
    if name not in location_heads.names():
        return {"loc_head": name}  # `validate` names the registered heads
    return {"loc_head": name, "loc_hidden": location_heads.flag_value(name, head.get(name, {}))}


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def typed_value(where: str, value: Any, field: dataclasses.Field, base: type, is_list: bool) -> Any:
    """`value` (from JSON) as field `field` holds it (a list as a tuple, an int as a float
    where a float is expected), or ValueError naming `where` and the type expected. JSON's
    "64" is not 64 and "false" is not false: a string is never converted."""

    def fits(item) -> bool:
        if base is float:
            return isinstance(item, (int, float)) and not isinstance(item, bool)
        if base is int:
            return isinstance(item, int) and not isinstance(item, bool)
        return isinstance(item, base)

    if value is None and field.default is None:
        return None
    if is_list and isinstance(value, list) and all(fits(v) for v in value):
        return tuple(base(v) for v in value)
    if not is_list and fits(value):
        return base(value)
    expected = (
        f"a list of {_EXPECTED[base].replace('an ', '').replace('a ', '')}s"
        if is_list
        else _EXPECTED[base]
    ) + (" or null" if field.default is None else "")
    raise ValueError(f"{where} = {json.dumps(value)[:100]} is not allowed: expected {expected}")


def sections() -> dict[str, type]:
    """ExperimentConfig's sections by field name ({"model": ModelConfig, ...}), each with flags."""
    return {
        f.name: type(f.default)
        for f in dataclasses.fields(ExperimentConfig)
        if dataclasses.is_dataclass(f.default)
    }


def typed_fields(kind: type) -> list[tuple[dataclasses.Field, type, bool]]:
    """(field, its base type, whether a tuple) for each field of the section `kind`, from its
    annotation: the one reading of a field's type, for its flag and for config.json."""
    hints = typing.get_type_hints(kind)
    out = []
    for field in dataclasses.fields(kind):
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
        is_list = typing.get_origin(hint) is tuple
        base = args[0] if args else hint
        if (
            "help" not in field.metadata
            or base not in _EXPECTED
            or len(args) > 1
            or (is_list and base is str)
        ):
            raise TypeError(
                f"{kind.__name__}.{field.name}: {hint} has no flag; declare it with "
                f"option(default, help) (rarl_tf/config/experiment.py) as int, float, bool, "
                f"str, X | None or a tuple of int or float"
            )
        out.append((field, base, is_list))
    return out


def _data_checks(d: DataConfig) -> list[tuple]:
    """(ok, flag, value, allowed) for the data fields."""
    return [
        (
            d.dataset != "voc_dir" or bool(d.data_dir),
            "data_dir",
            d.data_dir,
            "the VOC folder (holding JPEGImages/, Annotations/, "
            "ImageSets/Main/) when --dataset=voc_dir",
        ),
        (d.shuffle_buffer >= 1, "shuffle_buffer", d.shuffle_buffer, "an integer >= 1"),
        (d.max_pixels >= 1, "max_pixels", d.max_pixels, "an integer >= 1 (pixels per image)"),
    ]


def _model_checks(m: ModelConfig) -> list[tuple]:
    """(ok, flag, value, allowed) for the backbone, anchor and agent fields."""
    return [
        (
            m.backbone_weights in ("imagenet", "none")
            or m.backbone_weights.endswith(".weights.h5"),
            "backbone_weights",
            m.backbone_weights,
            "imagenet, none, or the path of an existing .weights.h5 file",
        ),
        (
            m.backbone != "small_vgg" or m.backbone_weights == "none",
            "backbone_weights",
            m.backbone_weights,
            "none for backbone small_vgg (it is trained from scratch)",
        ),
        (m.image_size > 0, "image_size", m.image_size, "a positive number of pixels"),
        (
            0 <= m.crop_margin < m.image_size,
            "crop_margin",
            m.crop_margin,
            f"0 <= m < image_size ({m.image_size})",
        ),
        (
            len(m.anchor_sizes) > 0 and min(m.anchor_sizes) > 0,
            "anchor_sizes",
            list(m.anchor_sizes),
            "one or more positive pixel sizes",
        ),
        (
            len(m.aspect_ratios) > 0 and min(m.aspect_ratios) > 0,
            "aspect_ratios",
            list(m.aspect_ratios),
            "one or more positive width/height ratios",
        ),
        # The paper pairs 3 scales with 3 ratios (k = 9); lists of different lengths are
        # almost always a typo in one of them.
        (
            len(m.aspect_ratios) == len(m.anchor_sizes),
            "aspect_ratios",
            list(m.aspect_ratios),
            f"as many ratios as --anchor_sizes has sizes "
            f"({len(m.anchor_sizes)}: {list(m.anchor_sizes)})",
        ),
        (m.crop_size >= 1, "crop_size", m.crop_size, "an integer >= 1"),
        (m.num_steps >= 1, "num_steps", m.num_steps, "T >= 1"),
        (m.loc_std > 0, "loc_std", m.loc_std, "sigma > 0"),
        (0 <= m.discount <= 1, "discount", m.discount, "0 <= gamma <= 1"),
    ]


def _train_eval_checks(t: TrainConfig, e: EvalConfig) -> list[tuple]:
    """(ok, flag, value, allowed) for the training and evaluation fields."""
    return [
        (t.batch_size >= 1, "batch_size", t.batch_size, "an integer >= 1"),
        (t.epochs >= 1, "epochs", t.epochs, "an integer >= 1"),
        (t.learning_rate > 0, "learning_rate", t.learning_rate, "> 0"),
        (
            t.steps_per_epoch is None or t.steps_per_epoch >= 1,
            "steps_per_epoch",
            t.steps_per_epoch,
            "an integer >= 1",
        ),
        (
            t.checkpoint_every_steps >= 1,
            "checkpoint_every_steps",
            t.checkpoint_every_steps,
            "an integer >= 1",
        ),
        (e.top_k >= 1, "top_k", e.top_k, "an integer >= 1"),
        (0 <= e.threshold <= 1, "threshold", e.threshold, "a probability in [0, 1]"),
    ]


def backbone_stride(m: ModelConfig) -> int:
    """Pixels per feature-map cell: VGG16 pools 4 times before conv5_3, small_vgg between its
    blocks (rarl_tf/model/backbone.py)."""
    return 16 if m.backbone == "vgg16" else 2 ** max(len(m.backbone_widths) - 1, 0)


def _size_checks(m: ModelConfig, t: TrainConfig, e: EvalConfig) -> list[tuple]:
    """(ok, flag, value, allowed) for the layer sizes, the optimizer's and the evaluation's
    numbers, and the smallest image the backbone can pool: each of these failed only inside
    TensorFlow (a traceback after config.json was written, which then locked the folder)."""
    side, stride = m.image_size - m.crop_margin, backbone_stride(m)
    return [
        (
            len(m.backbone_widths) > 0 and min(m.backbone_widths) >= 1,
            "backbone_widths",
            list(m.backbone_widths),
            "one or more channel counts >= 1",
        ),
        (m.embed_dim >= 1, "embed_dim", m.embed_dim, "an integer >= 1"),
        (m.lstm_units >= 1, "lstm_units", m.lstm_units, "an integer >= 1"),
        (
            side >= stride,
            "image_size",
            m.image_size,
            f"training crops of image_size - crop_margin >= {stride} pixels, the stride of "
            f"--backbone={m.backbone} (crop_margin {m.crop_margin})",
        ),
        (0 <= t.beta_1 < 1, "beta_1", t.beta_1, "0 <= beta_1 < 1"),
        (0 <= t.beta_2 < 1, "beta_2", t.beta_2, "0 <= beta_2 < 1"),
        (t.warmup_epochs >= 0, "warmup_epochs", t.warmup_epochs, ">= 0"),
        (t.seed >= 0, "seed", t.seed, "an integer >= 0"),
        (e.batch_size >= 1, "eval_batch_size", e.batch_size, "an integer >= 1"),
    ]


def _policy_checks(m: ModelConfig) -> list[tuple]:
    """(ok, flag, value, allowed) for the location-policy fields."""
    heads = location_heads.names()
    cells = m.loc_head in heads and location_heads.spec(m.loc_head).reads_cells
    return [
        (m.loc_head in heads, "loc_head", m.loc_head, f"one of {heads}"),
        (m.trajectories >= 1, "trajectories", m.trajectories, "an integer K >= 1"),
        (m.loc_grid >= 2, "loc_grid", m.loc_grid, "an integer G >= 2"),
        (
            m.inhibition_radius == 0
            or (m.inhibition_radius > 0 and (cells or m.locations == "random_inhibited")),
            "inhibition_radius",
            m.inhibition_radius,
            "0, or > 0 with a --loc_head that scores cells "
            f"({', '.join(h for h in heads if location_heads.spec(h).reads_cells)}: it acts on "
            "the head's cells) or --locations=random_inhibited",
        ),
        (
            m.inhibition_anneal_epochs == 0
            or (m.inhibition_radius > 0 and m.locations == "policy"),
            "inhibition_anneal_epochs",
            m.inhibition_anneal_epochs,
            "0, or > 0 with --inhibition_radius > 0 and a learned policy (it anneals that rule)",
        ),
        (
            m.locations != "random_inhibited" or m.inhibition_radius > 0,
            "locations",
            m.locations,
            "random_inhibited only with --inhibition_radius > 0",
        ),
        (m.policy_units >= 1, "policy_units", m.policy_units, "an integer >= 1"),
        (m.loc_hidden >= 0, "loc_hidden", m.loc_hidden, "an integer >= 0 (0: no layer)"),
    ]
