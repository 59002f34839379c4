"""The one list of datasets (rarl_tf/config/datasets.py): read by the config before TF loads,
and by the data sources, which add each dataset's reader."""

import subprocess
import sys

from conftest import ROOT
from rarl_tf.config.datasets import DATASETS


def test_the_config_reads_the_dataset_names_without_tensorflow():
    # Flags are checked before TF starts: the config and its list of datasets import no TF.
    code = (
        "import sys; import rarl_tf.config.experiment as e; "
        "assert 'tensorflow' not in sys.modules; print(e.DataConfig.__dataclass_fields__"
        "['dataset'].metadata['choices'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == repr(tuple(DATASETS))


def test_every_dataset_has_a_source_with_its_splits():
    from rarl_tf.data import sources

    assert list(sources.SOURCES) == list(DATASETS)
    for name, dataset in DATASETS.items():
        source = sources.get_source(name)
        assert dataset.reader in sources.READERS
        assert (source.train_split, source.eval_split) == (dataset.train_split, dataset.eval_split)
        assert source.class_names == sources.READERS[dataset.reader].class_names
