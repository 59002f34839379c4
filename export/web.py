"""`python -m export.web`, a shortcut of the checkout: runs rarl_tf.export.web."""

from export import forward

forward(__name__, __spec__.name)
