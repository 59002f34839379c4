"""`python -m export.gpu_rules`, a shortcut of the checkout: runs rarl_tf.export.gpu_rules."""

from export import forward

forward(__name__, __spec__.name)
