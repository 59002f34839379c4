"""The one list of location heads: name -> what the config needs to know of each (no TF).

The head's Keras class registers itself here too (`rarl_tf.model.location_heads.register_head`):
the config checks `--loc_head` and the head's settings before TensorFlow loads, the model builds
the class of that name. A head is one of two kinds, which is all the config asks of it:

  cells   a mixture over the G x G cells of the view (`--loc_grid`): inhibition of return acts
          on its cells, and `--loc_hidden` is the width of its cell terms (0: the agent's
          embedding width);
  normal  a Normal around a mean it computes from the state: `--loc_hidden` is the width of
          its hidden ReLU layer (0: none, the paper).

`settings` is the head's own config section (a frozen dataclass, one meaning per field), made
from the flat flags by `settings_from_flags` (the flags keep their names: voc.flags and
digits.flags predate the sections).
"""

from __future__ import annotations

import dataclasses
from typing import Any

KINDS = ("normal", "cells")


@dataclasses.dataclass(frozen=True)
class DenseHeadSettings:
    """The paper's head: Normal(tanh(W h_t), sigma)."""

    hidden: int = 0  # units of a hidden ReLU layer before the mean (0: none, the paper)


@dataclasses.dataclass(frozen=True)
class CellHeadSettings:
    """A head that scores the view's cells (spatial, query)."""

    width: int = 0  # A, the width of its cell terms (0: the agent's embedding width)


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """A registered head: its kind (`KINDS`) and its settings' dataclass."""

    name: str
    kind: str
    settings: type

    @property
    def reads_cells(self) -> bool:
        return self.kind == "cells"


HEADS: dict[str, HeadSpec] = {}


def register(name: str, kind: str, settings: type = CellHeadSettings) -> HeadSpec:
    """Adds (or replaces, for a module reloaded) the head `name`; returns its spec."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    HEADS[name] = HeadSpec(name, kind, settings)
    return HEADS[name]


def names() -> tuple[str, ...]:
    """The heads `--loc_head` may name, in registration order."""
    return tuple(HEADS)


def spec(name: str) -> HeadSpec:
    if name not in HEADS:
        raise ValueError(f"loc_head={name!r}; expected one of {names()}")
    return HEADS[name]


def settings_from_flags(name: str, loc_hidden: int) -> dict[str, Any]:
    """The settings of head `name` as the flat flags give them: `--loc_hidden` is the hidden
    layer of a normal head and the cell width of a cells head (its meaning before the heads had
    sections of their own); a head whose settings lack that field keeps its defaults."""
    head = spec(name)
    field = "hidden" if head.kind == "normal" else "width"
    known = {f.name for f in dataclasses.fields(head.settings)}
    values = {field: loc_hidden} if field in known else {}
    return dataclasses.asdict(head.settings(**values))


def flag_value(name: str, settings: Any) -> Any:
    """`--loc_hidden`'s value for head `name`'s settings (a JSON object: the head's section of
    config.json), the inverse of `settings_from_flags`; ValueError for settings that the flags
    cannot hold (another value of a setting they leave at its default)."""
    head = spec(name)
    field = "hidden" if head.kind == "normal" else "width"
    known = {f.name for f in dataclasses.fields(head.settings)}
    if not isinstance(settings, dict) or set(settings) - known:
        raise ValueError(
            f"model.policy.head.{name} = {str(settings)[:100]} is not allowed: expected a JSON "
            f"object of {head.settings.__name__} fields {sorted(known)}"
        )
    value = settings.get(field, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        return value  # its type is checked with the flags' (`experiment.typed_value`)
    if {**dataclasses.asdict(head.settings()), **settings} != settings_from_flags(name, value):
        raise ValueError(
            f"model.policy.head.{name} = {str(settings)[:100]} is not allowed: only "
            f"{field!r} (--loc_hidden) may differ from its default"
        )
    return value


# The built-in heads (rarl_tf/model/location_heads.py holds their classes).
register("dense", "normal", DenseHeadSettings)
register("spatial", "cells", CellHeadSettings)
register("query", "cells", CellHeadSettings)
