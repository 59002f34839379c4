"""One training run loads each split of its dataset once (a VOC folder's annotations are parsed
at every load, and its bad files named each time)."""

import collections
import dataclasses

import tensorflow_datasets as tfds

from conftest import tiny_voc_run
from fake_tfds import as_dataset_fn
from rarl_tf.data import sources
from rarl_tf.training import callbacks, trainer


def test_train_loads_each_split_once(tmp_path, monkeypatch):
    config = tiny_voc_run(steps_per_epoch=2)
    source = sources.get_source(config.data.dataset)
    loads = collections.Counter()

    def counted_load(split, *args, **kwargs):
        loads[split] += 1
        return source.load(split, *args, **kwargs)

    monkeypatch.setitem(
        sources.SOURCES, config.data.dataset, dataclasses.replace(source, load=counted_load)
    )
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(8)):
        model, _ = trainer.train(config, str(tmp_path), verbose=0)
    assert callbacks.global_step(model) == 2
    # The training split for the steps; the evaluation split for the attention pictures.
    assert loads == {source.train_split: 1, source.eval_split: 1}
