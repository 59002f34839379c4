"""Writes the snapshots tests/test_config.py compares with (run from the repository root).

    PYTHONPATH=. python tests/data/make_flag_snapshots.py

flagfile_configs.json: the ExperimentConfig each recipe flagfile (and no flagfile) builds.
flags_before.json: every flag of `define_experiment_flags` (type, default, help, enum values).
Both were taken at commit 8f2e9b4, before the flags were generated from the config dataclasses;
rerunning this script later would snapshot the new code against itself, so do not.

Entries changed by hand since, each with the change that meant to change its recipe:
digits.flags (650c628, the location policy); voc.flags, voc640.flags, coco.flags and
coco640.flags (issue 21: the policy that learns, and --policy_learning_rate). The *_paper.flags
entries were added as copies of the voc/coco entries taken at 8f2e9b4: the paper's recipe moved
to those files unchanged.
"""

import json

from rarl_tf import flags as f

FLAGFILES = ["digits.flags", "voc.flags", "coco.flags", "voc640.flags", "coco640.flags"]

f.define_model_dir_flag()
f.define_experiment_flags()
configs = {}
for name in ["(defaults)"] + FLAGFILES:
    f.FLAGS.unparse_flags()
    f.FLAGS(["x", "--model_dir=m"] + ([] if name == "(defaults)" else ["--flagfile=" + name]))
    configs[name] = json.loads(f.experiment_config_from_flags().to_json())
table = {}
for flag in f.FLAGS.flags_by_module_dict()["rarl_tf.flags"]:
    if flag.name != "model_dir":
        table[flag.name] = {
            "type": flag.flag_type(),
            "default": flag.default,
            "default_as_str": flag.default_as_str,
            "help": flag.help,
            "enum_values": getattr(flag.parser, "enum_values", None),
        }
with open("tests/data/flagfile_configs.json", "w") as out:
    json.dump({"configs": configs}, out, indent=1, sort_keys=True)
with open("tests/data/flags_before.json", "w") as out:
    json.dump(table, out, indent=1, sort_keys=True)
