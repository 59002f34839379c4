"""A Pascal VOC folder on disk, written from a few annotations and image bytes."""

import numpy as np
from PIL import Image

OBJECT = "<object><name>{}</name><difficult>{}</difficult></object>"


def write_voc(root, images):
    """images: id -> (objects [(name, difficult)] or raw XML text, image bytes or None)."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (objects, image) in images.items():
        xml = (
            objects
            if isinstance(objects, str)
            else "<annotation>{}</annotation>".format(
                "".join(OBJECT.format(n, int(d)) for n, d in objects)
            )
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        if image is not None:
            (root / "JPEGImages" / f"{image_id}.jpg").write_bytes(image)
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(images) + "\n")
    return root


def jpeg(tmp_path, seed=0):
    path = tmp_path / f"scratch{seed}.jpg"
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()
