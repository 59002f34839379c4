"""One training run loads each split of its dataset once (a VOC folder's annotations are parsed
at every load, and its bad files named each time): `trainer.train`, and the rarl-train entry
point's training and the evaluation after it."""

import collections
import dataclasses
import json

import pytest
import tensorflow_datasets as tfds

from conftest import tiny_voc_run
from fake_tfds import as_dataset_fn
from rarl_tf import model_folder
from rarl_tf import train as train_entry
from rarl_tf.data import sources


@pytest.fixture
def loads(monkeypatch):
    """Counts the loads of each voc2007 split, by the loader's split name."""
    source = sources.get_source("voc2007")
    counted = collections.Counter()

    def counted_load(split, *args, **kwargs):
        counted[split] += 1
        return source.load(split, *args, **kwargs)

    monkeypatch.setitem(sources.SOURCES, "voc2007", dataclasses.replace(source, load=counted_load))
    return counted


def test_the_entry_point_loads_each_split_once(tmp_path, loads):
    """rarl-train's work after its flags (`trainer.train`, then the scoring): the training
    split for the steps; the evaluation split for the attention pictures and the scoring, read
    from one load (loaded once in each before). One test for both: a run costs ~25 s here."""
    config = tiny_voc_run(steps_per_epoch=1)
    source = sources.get_source(config.data.dataset)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(8)):
        results = train_entry.train_and_evaluate(config, str(tmp_path), None)
    assert results["steps"] == 1 and results["num_images"] == 8
    with open(tmp_path / model_folder.METRICS_FILE) as f:
        assert json.load(f)["mAP"] == results["mAP"]
    assert loads == {source.train_split: 1, source.eval_split: 1}
