"""Command-line flags shared by the entry points, generated from the config dataclasses.

Only entry points (train.py, evaluate.py, predict.py, tools/) import this module; library code
takes the `ExperimentConfig` it builds. Each field of `ModelConfig`, `DataConfig`, `TrainConfig`
and `EvalConfig` is one flag, named, typed and explained by the field (`experiment.option`):

    int, float, bool, str   DEFINE_integer / _float / _bool / _string (a str with `enum=True`
                            and `choices`: DEFINE_enum)
    X | None                as X, default None
    tuple[int | float, ...] DEFINE_list: comma-separated numbers (`--anchor_sizes=80,160,320`)
"""

from __future__ import annotations

import os

from absl import flags

from rarl_tf.config.experiment import (
    EvalConfig,
    ExperimentConfig,
    flag_name,
    sections,
    typed_fields,
)

FLAGS = flags.FLAGS
_DEFINE = {
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    bool: flags.DEFINE_bool,
    str: flags.DEFINE_string,
}


def define_model_dir_flag(required: bool = True) -> None:
    flags.DEFINE_string(
        "model_dir", None, "Directory of checkpoints, logs and results.", required=required
    )


def define_experiment_flags(values: flags.FlagValues = FLAGS) -> None:
    """Flags of everything in `ExperimentConfig`; defaults are the paper's VOC 512 recipe."""
    for kind in sections().values():
        define_section_flags(kind, values)


def define_eval_flags() -> None:
    define_section_flags(EvalConfig)


def define_section_flags(
    kind: type, values: flags.FlagValues = FLAGS, only: tuple[str, ...] | None = None
) -> None:
    """One flag per field of the config dataclass `kind` (or per field named in `only`: an
    entry point that takes a few config values, e.g. predict's --top_k)."""
    for field, base, is_list in typed_fields(kind):
        if only is not None and field.name not in only:
            continue
        name, text, default = flag_name(field), field.metadata["help"], field.default
        if is_list:
            show = str if base is int else "{:g}".format
            flags.DEFINE_list(name, [show(v) for v in default], text, flag_values=values)
        elif field.metadata.get("enum"):
            flags.DEFINE_enum(
                name, default, list(field.metadata["choices"]), text, flag_values=values
            )
        else:
            _DEFINE[base](name, default, text, flag_values=values)


def section_from_flags(kind: type, values: flags.FlagValues = FLAGS):
    """The config dataclass `kind` the parsed flags describe (not validated)."""
    fields = {}
    for field, base, is_list in typed_fields(kind):
        value = values[flag_name(field)].value
        fields[field.name] = _numbers(flag_name(field), value, base) if is_list else value
    return kind(**fields)


def eval_config_from_flags() -> EvalConfig:
    """The evaluation settings of the parsed flags, validated as train's are (ValueError
    names the bad flag): `evaluate` checks them before it loads any model."""
    config = section_from_flags(EvalConfig)
    ExperimentConfig(eval=config).validate()
    return config


def experiment_config_from_flags(values: flags.FlagValues = FLAGS) -> ExperimentConfig:
    """The frozen config the flags describe (validated; ValueError names the bad flag)."""
    config = ExperimentConfig(
        **{name: section_from_flags(kind, values) for name, kind in sections().items()}
    )
    config.validate()
    _check_files(config)
    return config


def _check_files(config: ExperimentConfig) -> None:
    """The files the flags name exist: checked here, before any work, as the config's own
    `validate` checks values alone."""
    weights = config.model.backbone_weights
    if weights not in ("imagenet", "none") and not os.path.isfile(weights):
        raise ValueError(
            f"--backbone_weights={weights} is not allowed: expected imagenet, none, or the path "
            f"of an existing .weights.h5 file"
        )


def experiment_config_from_flagfile(path: str) -> ExperimentConfig:
    """The config a flagfile (digits.flags, voc.flags) describes; other flags at their defaults.

    Parses into a FlagValues of its own: the process's FLAGS are left as they are.
    """
    values = flags.FlagValues()
    define_experiment_flags(values)
    values(["flagfile", f"--flagfile={path}"])
    return experiment_config_from_flags(values)


def _numbers(name: str, values, kind=float) -> tuple:
    try:
        return tuple(kind(v) for v in values)
    except ValueError:
        raise ValueError(
            f"--{name}={','.join(values)}: expected a comma-separated list of "
            f"{kind.__name__} values"
        ) from None
