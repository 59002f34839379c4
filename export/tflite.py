"""`python -m export.tflite`, a shortcut of the checkout: runs rarl_tf.export.tflite."""

from export import forward

forward(__name__, __spec__.name)
