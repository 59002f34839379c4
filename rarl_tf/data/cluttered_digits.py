"""`cluttered_digits`: the embedded default dataset, a tensorflow-datasets builder.

Canvases of 1 to 4 real handwritten digits (scikit-learn's bundled 8 x 8 `load_digits`, so
nothing is downloaded) of varied scale and aspect ratio (stretched 2:1, 1:1, 1:2), at random
places, in random bright colours, over faint clutter cut from other digits. Ten classes.

The 1797 source digits are split once into disjoint pools (80 % train, 20 % test, per class):
test canvases, their clutter included, use only digits no train canvas uses.

Configs: `default` (128 px), `small` (64 px, a few hundred canvases, for tests), `large`
(1 to 3 digits whose longer side is a third to two thirds of the canvas: objects as large,
relative to the image, as Pascal VOC's) and `repeats` (3 classes per canvas, each 2 or 3 times:
6 to 9 small square digits, apart from each other, so that a policy that does not remember which
classes it has seen spends glimpses on classes it has already found; docs/location_policy.md,
"A benchmark where memory pays").

Features:
    image            uint8 [S, S, 3]
    labels           float32 [10], multi-hot
    objects/bbox     [n, 4] (ymin, xmin, ymax, xmax) normalised to the canvas
    objects/label    [n] digit class
    objects/source_index  [n] row of the digit in `sklearn.datasets.load_digits()`

    import rarl_tf.data.cluttered_digits  # registers the builder
    ds = tfds.load("cluttered_digits", split="train")
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

NUM_CLASSES = 10
ASPECT_RATIOS = (2.0, 1.0, 0.5)  # width / height of a placed digit


@dataclasses.dataclass
class ClutteredDigitsConfig(tfds.core.BuilderConfig):
    """canvas_size in pixels; num_train / num_test canvases; seed of the whole generation.

    max_digits: up to this many digits per canvas (at least one).
    long_sides: (low, high) fractions of the canvas side for each digit's longer side, drawn
      uniformly; None: the default's own rule (heights 20 to 44 px of 128, the width from the
      aspect ratio; long sides 0.16 to 0.69 of the side, most under 0.4).
    classes_per_canvas: 0 draws every digit's class independently (up to `max_digits`);
      n > 0 draws n distinct classes and places each `copies` (low, high) times instead.
    aspect_ratios: the width / height ratios digits are drawn with.
    gap: with `classes_per_canvas`, the least space between two digits (fraction of the side):
      an anchor around one digit then holds no part of another.
    edge: with `classes_per_canvas`, the least space between a digit and the canvas's edge
      (fraction of the side), so a training crop does not cut a labelled digit away.
    """

    canvas_size: int = 128
    num_train: int = 10_000
    num_test: int = 2_000
    seed: int = 0
    max_digits: int = 4
    long_sides: tuple[float, float] | None = None
    classes_per_canvas: int = 0
    copies: tuple[int, int] = (2, 3)
    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS
    gap: float = 0.0
    edge: float = 0.0


def source_pools(seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint indices into load_digits() for each split: 80 % of every class to train."""
    from sklearn.datasets import load_digits

    targets = load_digits().target
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(NUM_CLASSES):
        rows = rng.permutation(np.flatnonzero(targets == digit))
        cut = int(round(0.8 * len(rows)))
        train.append(rows[:cut])
        test.append(rows[cut:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def _resize(glyph: np.ndarray, height: int, width: int) -> np.ndarray:
    """An 8 x 8 glyph in [0, 1] resized bilinearly to [height, width] in [0, 1]."""
    image = Image.fromarray(np.uint8(glyph * 255))
    return np.asarray(image.resize((width, height), Image.BILINEAR), np.float32) / 255.0


def _overlaps(box, boxes, max_iou: float = 0.1) -> bool:
    y1, x1, y2, x2 = box
    for b1, a1, b2, a2 in boxes:
        inter = max(0, min(y2, b2) - max(y1, b1)) * max(0, min(x2, a2) - max(x1, a1))
        union = (y2 - y1) * (x2 - x1) + (b2 - b1) * (a2 - a1) - inter
        if inter / union > max_iou:
            return True
    return False


def _digit_shape(
    rng: np.random.Generator, size: int, ratio: float, long_sides: tuple[float, float] | None
) -> tuple[int, int]:
    """(height, width) in pixels of a digit of aspect ratio `ratio` (width / height)."""
    if long_sides is not None:
        longest = int(rng.integers(round(size * long_sides[0]), round(size * long_sides[1]) + 1))
        shortest = int(round(longest * min(ratio, 1.0 / ratio)))
        return (longest, shortest) if ratio < 1.0 else (shortest, longest)
    height = int(rng.integers(size * 20 // 128, size * 44 // 128 + 1))
    width = int(min(round(height * ratio), size - 2))
    if ratio < 1.0:  # tall digits: grow the height rather than shrink the width to slivers
        width = int(round(height * 0.75))
        height = int(min(round(width / ratio), size - 2))
    return height, width


def canvas_plan(config: ClutteredDigitsConfig) -> dict | None:
    """`make_canvas`'s `plan` for `config`: None for the default rule (independent classes)."""
    if not config.classes_per_canvas:
        return None
    keys = ("classes_per_canvas", "copies", "aspect_ratios", "gap", "edge")
    return {key: getattr(config, key) for key in keys}


def _repeated_rows(
    rng: np.random.Generator, targets: np.ndarray, pool: np.ndarray, classes: int, copies
) -> list[int]:
    """Rows of `pool` for `classes` distinct classes, each `copies` (low, high) times, shuffled."""
    chosen = rng.choice(NUM_CLASSES, size=classes, replace=False)
    rows = []
    for digit in chosen:
        count = int(rng.integers(copies[0], copies[1] + 1))
        rows += [int(r) for r in rng.choice(pool[targets[pool] == digit], size=count)]
    return [rows[i] for i in rng.permutation(len(rows))]


def _apart(box, boxes, gap: int) -> bool:
    """Whether `box` keeps at least `gap` pixels from every box in `boxes` (none may touch)."""
    y1, x1, y2, x2 = box
    return all(
        y1 >= b2 + gap or b1 >= y2 + gap or x1 >= a2 + gap or a1 >= x2 + gap
        for b1, a1, b2, a2 in boxes
    )


def _clutter(rng: np.random.Generator, glyphs: np.ndarray, pool: np.ndarray, size: int):
    """A [size, size, 3] float canvas of faint 3-5 px fragments of digits, enlarged, so that no
    fragment reads as a digit."""
    canvas = np.zeros((size, size, 3), np.float32)
    for _ in range(rng.integers(4, 9)):
        glyph = glyphs[rng.choice(pool)]
        fy, fx = rng.integers(0, 5, size=2)
        frag = glyph[fy : fy + rng.integers(3, 5), fx : fx + rng.integers(3, 5)]
        side = int(rng.integers(size // 16, size // 8 + 1))
        frag = _resize(frag, side, side) * rng.uniform(0.15, 0.35)
        y, x = rng.integers(0, size - side, size=2)
        canvas[y : y + side, x : x + side] += frag[..., None] * rng.uniform(0.5, 1.0, 3)
    return canvas


def make_canvas(
    rng: np.random.Generator,
    glyphs: np.ndarray,
    targets: np.ndarray,
    pool: np.ndarray,
    size: int,
    max_digits: int = 4,
    long_sides: tuple[float, float] | None = None,
    plan: dict | None = None,
) -> dict:
    """One example: 1 to `max_digits` digits drawn from `pool` (rows of `glyphs`
    [1797, 8, 8] in [0, 1]), sized by `_digit_shape`; with `plan` (`classes_per_canvas`,
    `copies`, `aspect_ratios`, `gap`, `edge` of the config, classes_per_canvas > 0), the
    repeated classes of `_repeated_rows`, kept apart by `gap` and from the edge by `edge`."""
    canvas = _clutter(rng, glyphs, pool, size)
    boxes, labels, sources = [], [], []
    if plan is None:
        rows = (int(rng.choice(pool)) for _ in range(rng.integers(1, max_digits + 1)))
        ratios, edge = ASPECT_RATIOS, 0
    else:
        rows = _repeated_rows(rng, targets, pool, plan["classes_per_canvas"], plan["copies"])
        ratios, edge = plan["aspect_ratios"], int(round(plan["edge"] * size))
    for row in rows:
        ratio = ratios[rng.integers(len(ratios))]
        height, width = _digit_shape(rng, size, ratio, long_sides)
        for _attempt in range(30 if plan is None else 200):
            y = int(rng.integers(edge, size - height - edge))
            x = int(rng.integers(edge, size - width - edge))
            box = (y, x, y + height, x + width)
            if plan is None and not _overlaps(box, boxes):
                break
            if plan is not None and _apart(box, boxes, int(round(plan["gap"] * size))):
                break
        else:
            continue  # no room left; fewer digits on this canvas
        digit = _resize(glyphs[row], height, width)[..., None] * rng.uniform(0.55, 1.0, 3)
        region = canvas[y : y + height, x : x + width]
        canvas[y : y + height, x : x + width] = np.maximum(region, digit)
        boxes.append(box)
        labels.append(int(targets[row]))
        sources.append(row)

    multi_hot = np.zeros(NUM_CLASSES, np.float32)
    multi_hot[labels] = 1.0
    return {
        "image": np.uint8(np.clip(canvas, 0.0, 1.0) * 255),
        "labels": multi_hot,
        "objects": {
            "bbox": np.asarray(boxes, np.float32).reshape(-1, 4) / size,
            "label": np.asarray(labels, np.int64),
            "source_index": np.asarray(sources, np.int64),
        },
    }


class ClutteredDigits(tfds.core.GeneratorBasedBuilder):
    """Multi-label canvases of handwritten digits over clutter (no download)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ClutteredDigitsConfig(name="default", description="128 px, 10000 train / 2000 test"),
        # For smoke tests and quick looks: generated in about a second.
        ClutteredDigitsConfig(
            name="small",
            description="64 px, 256 train / 64 test",
            canvas_size=64,
            num_train=256,
            num_test=64,
        ),
        # Objects as large as VOC's, relative to the image: 1 to 3 digits whose longer side is
        # a third to two thirds of the canvas (fewer where they do not fit apart).
        ClutteredDigitsConfig(
            name="large",
            description="128 px, 10000 train / 2000 test, "
            "1-3 digits, longer side 1/3 to 2/3 of the canvas",
            max_digits=3,
            long_sides=(1 / 3, 2 / 3),
        ),
        # Where memory pays (docs/location_policy.md, "A benchmark where memory pays"): 3
        # classes per canvas, each 2 or 3 times, square digits 16 to 19 px of 128 (8 to 9.5 px
        # at N = 64: the 8 x 8 source keeps its detail, a whole-view glance at 4 x 4 does not),
        # at least 10 px apart and 10 px from the edge.
        ClutteredDigitsConfig(
            name="repeats",
            description="128 px, 10000 train / 2000 test, 3 classes each 2-3 times, small digits",
            long_sides=(0.125, 0.15),
            classes_per_canvas=3,
            copies=(2, 3),
            aspect_ratios=(1.0,),
            gap=0.08,
            edge=0.08,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.canvas_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                    "labels": tfds.features.Tensor(shape=(NUM_CLASSES,), dtype=np.float32),
                    "objects": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "label": tfds.features.ClassLabel(
                                names=[str(d) for d in range(NUM_CLASSES)]
                            ),
                            "source_index": np.int64,
                        }
                    ),
                }
            ),
            supervised_keys=("image", "labels"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated from scikit-learn's bundled digits
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split: str, count: int):
        from sklearn.datasets import load_digits

        config = self.builder_config
        digits = load_digits()
        glyphs, targets = digits.images / 16.0, digits.target
        pool = source_pools(config.seed)[split]
        plan = canvas_plan(config)
        rng = np.random.default_rng([config.seed, 0 if split == "train" else 1])
        for index in range(count):
            yield (
                index,
                make_canvas(
                    rng,
                    glyphs,
                    targets,
                    pool,
                    config.canvas_size,
                    config.max_digits,
                    config.long_sides,
                    plan,
                ),
            )
