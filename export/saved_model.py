"""`python -m export.saved_model`, a shortcut of the checkout: runs rarl_tf.export.saved_model."""

from export import forward

forward(__name__, __spec__.name)
