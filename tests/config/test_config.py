"""The config dataclasses as the one source of the flags: names, types, defaults, choices."""

import copy
import dataclasses
import json
import os
import re

import pytest
from absl import flags

from conftest import FIXTURES, ROOT
from rarl_tf.config import experiment as config_lib
from rarl_tf.config import flags as rarl_flags
from rarl_tf.config.experiment import (
    HEAD_FIELDS,
    MODEL_SECTIONS,
    ExperimentConfig,
    ModelConfig,
    flag_name,
    option,
    sections,
    typed_fields,
)

# Taken from the code before the flags were generated (tests/fixtures/make_flag_snapshots.py).
with open(os.path.join(FIXTURES, "flagfile_configs.json")) as _f:
    FLAGFILE_CONFIGS = json.load(_f)["configs"]
with open(os.path.join(FIXTURES, "flags_before.json")) as _f:
    FLAGS_BEFORE = json.load(_f)


def experiment_flags(*argv):
    """A fresh FlagValues holding the experiment flags, parsed from `argv`."""
    values = flags.FlagValues()
    rarl_flags.define_experiment_flags(values)
    values(["prog", *argv])
    return values


def all_fields():
    return [
        (name, field) for name, kind in sections().items() for field in dataclasses.fields(kind)
    ]


def test_every_field_is_a_flag_and_every_flag_a_field():
    values = experiment_flags()
    names = [flag_name(field) for _, field in all_fields()]
    assert len(names) == len(set(names))  # no two fields share a flag
    assert set(names) == set(values)
    assert sections() == {
        "model": ModelConfig,
        "data": config_lib.DataConfig,
        "train": config_lib.TrainConfig,
        "eval": config_lib.EvalConfig,
    }
    # The defaults of the flags are the dataclasses' defaults.
    assert rarl_flags.experiment_config_from_flags(values) == ExperimentConfig()
    for _, field in all_fields():
        assert field.metadata["help"] and values[flag_name(field)].help.endswith(
            field.metadata["help"]
        )


def test_every_flag_from_before_keeps_its_name_type_and_default():
    values = experiment_flags()
    for name, before in FLAGS_BEFORE.items():
        flag = values[name]
        assert flag.flag_type() == before["type"], name
        assert flag.default == before["default"], name
        assert flag.default_as_str == before["default_as_str"], name
        assert getattr(flag.parser, "enum_values", None) == before["enum_values"], name


def test_eval_batch_size_is_the_one_flag_named_apart_from_its_field():
    renamed = {
        f"{section}.{field.name}": flag_name(field)
        for section, field in all_fields()
        if flag_name(field) != field.name
    }
    assert renamed == {"eval.batch_size": "eval_batch_size"}
    values = experiment_flags("--eval_batch_size=7", "--batch_size=3")
    config = rarl_flags.experiment_config_from_flags(values)
    assert config.eval.batch_size == 7 and config.train.batch_size == 3


@pytest.mark.parametrize("flagfile", sorted(FLAGFILE_CONFIGS))
def test_recipe_flagfiles_build_the_config_they_built_before(flagfile):
    if flagfile == "(defaults)":
        config = rarl_flags.experiment_config_from_flags(experiment_flags())
    else:
        config = rarl_flags.experiment_config_from_flagfile(os.path.join(ROOT, flagfile))
    # The config.json of before reads back as this config: every value it held is the same, and
    # a field added since (absent from it) is at its default.
    assert ExperimentConfig.from_dict(FLAGFILE_CONFIGS[flagfile]) == config


def test_every_field_takes_its_flag():
    """A value other than the default, given on the command line, lands in its field."""
    argv, expected = [], {}
    for section, kind in sections().items():
        for field, base, is_list in typed_fields(kind):
            name, default, choices = flag_name(field), field.default, field.metadata["choices"]
            if base is bool:
                argv.append(f"--{'no' if default else ''}{name}")
                value = not default
            else:
                if is_list:
                    value, text = (base(2), base(5)), "2,5"
                elif choices:
                    value = next(c for c in choices if c != default)
                elif base is str:
                    value = "elsewhere"
                else:
                    value = base((default or 0) + (1 if base is int else 0.25))
                argv.append(f"--{name}={value if not is_list else text}")
            expected[section, field.name] = value
    values = experiment_flags(*argv)
    for (section, name), value in expected.items():
        got = rarl_flags.section_from_flags(sections()[section], values)
        assert getattr(got, name) == value != getattr(got.__class__(), name), (section, name)


@pytest.mark.parametrize(
    "section,field",
    [(s, f) for s, f in all_fields() if f.metadata["choices"]],
    ids=lambda x: getattr(x, "name", x),
)
def test_a_bad_choice_names_the_flag_and_the_allowed_values(section, field):
    bad = "bogus" if isinstance(field.default, str) else 7
    config = dataclasses.replace(
        ExperimentConfig(),
        **{section: dataclasses.replace(getattr(ExperimentConfig(), section), **{field.name: bad})},
    )
    with pytest.raises(ValueError) as err:
        config.validate()
    assert str(err.value) == (
        f"--{flag_name(field)}={bad} is not allowed: expected one of {field.metadata['choices']}"
    )


@pytest.mark.parametrize(
    "section,field",
    [(s, f) for s, f in all_fields() if f.metadata["minimum"] is not None],
    ids=lambda x: getattr(x, "name", x),
)
def test_a_value_under_the_minimum_names_the_flag_and_the_minimum(section, field):
    minimum = field.metadata["minimum"]
    bad = minimum - 1
    config = dataclasses.replace(
        ExperimentConfig(),
        **{section: dataclasses.replace(getattr(ExperimentConfig(), section), **{field.name: bad})},
    )
    with pytest.raises(ValueError) as err:
        config.validate()
    assert str(err.value) == f"--{flag_name(field)}={bad} is not allowed: expected >= {minimum}"
    at_minimum = dataclasses.replace(getattr(ExperimentConfig(), section), **{field.name: minimum})
    dataclasses.replace(ExperimentConfig(), **{section: at_minimum}).validate()


def test_an_enum_flag_refuses_a_bad_choice_while_parsing():
    message = "--region_pool=mean: value should be one of <flatten|max>"
    with pytest.raises(flags.IllegalFlagValueError, match=re.escape(message)):
        experiment_flags("--region_pool=mean")


def test_a_bad_number_list_names_the_flag():
    values = experiment_flags("--anchor_sizes=8,x")
    with pytest.raises(
        ValueError, match="--anchor_sizes=8,x: expected a comma-separated list of float values"
    ):
        rarl_flags.experiment_config_from_flags(values)


def test_help_shows_a_line_per_flag():
    values = experiment_flags()
    text = " ".join(values.get_help().split())  # help lines are wrapped at 80 columns
    for _, field in all_fields():
        name = ("--[no]" if isinstance(field.default, bool) else "--") + flag_name(field)
        assert f" {name}: " in text and " ".join(field.metadata["help"].split()) in text, name


def test_a_new_field_needs_nothing_but_its_declaration():
    @dataclasses.dataclass(frozen=True)
    class Extra:
        widths: tuple[int, ...] = option((4, 8), "Widths.")
        rate: float | None = option(None, "A rate.")
        mode: str = option("a", "A mode.", choices=("a", "b"), enum=True)
        count: int = option(2, "A count.", flag="extra_count")

    values = flags.FlagValues()
    rarl_flags.define_section_flags(Extra, values)
    values(["prog", "--widths=1,2,3", "--rate=0.5", "--mode=b", "--extra_count=9"])
    assert rarl_flags.section_from_flags(Extra, values) == Extra((1, 2, 3), 0.5, "b", 9)


def test_a_field_without_a_flag_declaration_is_refused_by_name():
    @dataclasses.dataclass(frozen=True)
    class Bare:
        size: int = 3

    with pytest.raises(TypeError, match="Bare.size"):
        rarl_flags.define_section_flags(Bare, flags.FlagValues())


def test_old_config_files_still_load():
    raw = copy.deepcopy(FLAGFILE_CONFIGS["(defaults)"])  # flat: before 2026-12-06
    raw["model"].update(reinforce_weight=1.0, baseline_weight=1.0)  # removed keys
    del raw["train"]["jit_compile"]  # a run from before the field was added
    assert ExperimentConfig.from_dict(raw) == ExperimentConfig()
    raw["model"]["no_such_key"] = 1
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        ExperimentConfig.from_dict(raw)


def test_every_model_field_has_one_place_in_config_json():
    placed = [name for names in MODEL_SECTIONS.values() for name in names] + list(HEAD_FIELDS)
    assert sorted(placed) == sorted(f.name for f in dataclasses.fields(ModelConfig))


@pytest.mark.parametrize("flagfile", sorted(FLAGFILE_CONFIGS))
def test_config_json_holds_the_model_in_sections_and_reads_back(flagfile):
    config = ExperimentConfig.from_dict(FLAGFILE_CONFIGS[flagfile])
    raw = json.loads(config.to_json())
    assert set(raw["model"]) == set(MODEL_SECTIONS)
    head = raw["model"]["policy"]["head"]
    # One meaning per setting: --loc_hidden is the dense head's hidden layer, a cells head's
    # width.
    setting = "hidden" if config.model.loc_head == "dense" else "width"
    assert head == {"type": config.model.loc_head, head["type"]: {setting: config.model.loc_hidden}}
    assert ExperimentConfig.from_dict(raw) == config


def test_a_head_section_the_flags_cannot_hold_is_refused_by_name():
    raw = json.loads(ExperimentConfig().to_json())
    raw["model"]["policy"]["head"] = {"type": "dense", "dense": {"hidden": 3, "depth": 2}}
    with pytest.raises(ValueError, match=r"model.policy.head.dense = .* DenseHeadSettings"):
        ExperimentConfig.from_dict(raw)
    raw["model"]["policy"]["head"] = {"type": "spatial", "spatial": {"width": "8"}}
    with pytest.raises(ValueError, match='model.policy.head.spatial = "8" is not allowed'):
        ExperimentConfig.from_dict(raw)
    raw["model"]["regions"]["loc_grid"] = 5  # a policy field in another section
    with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['regions.loc_grid'\]"):
        ExperimentConfig.from_dict(raw)
