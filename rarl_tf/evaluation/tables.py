"""Markdown tables of results, shaped like the paper's (Table 1: per-class AP on VOC; Table 2:
CP/CR/CF1/OP/OR/OF1 on COCO). Shared by `rarl_tf.evaluate` and the tools."""

from __future__ import annotations

from typing import Sequence

PRF_KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")
# Table 1's short column names for the 20 VOC classes.
VOC_SHORT = {
    "aeroplane": "aero",
    "bicycle": "bike",
    "diningtable": "table",
    "motorbike": "mbike",
    "pottedplant": "plant",
    "tvmonitor": "tv",
}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; floats are printed with 3 significant decimals."""

    def cell(value):
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _percent(value):
    return None if value is None else round(100.0 * value, 1)


def results_tables(named_results: Sequence[tuple[str, dict]], max_class_columns: int = 20) -> str:
    """Table 1 (per-class AP and mAP, in %) when there are at most `max_class_columns` classes,
    then Table 2 (CP, CR, CF1, OP, OR, OF1 and mAP, in %), one row per named result."""
    tables = []
    classes = list(named_results[0][1]["per_class_ap"])
    if len(classes) <= max_class_columns:
        header = ["method"] + [VOC_SHORT.get(c, c) for c in classes] + ["mAP"]
        rows = [
            [name] + [_percent(r["per_class_ap"][c]) for c in classes] + [_percent(r["mAP"])]
            for name, r in named_results
        ]
        tables.append(_percent_table(header, rows))
    header = ["method", *PRF_KEYS, "mAP"]
    rows = [
        [name] + [_percent(r[k]) for k in PRF_KEYS] + [_percent(r["mAP"])]
        for name, r in named_results
    ]
    tables.append(_percent_table(header, rows))
    return "\n\n".join(tables)


def _percent_table(header, rows) -> str:
    return markdown_table(
        header, [[f"{v:.1f}" if isinstance(v, float) else v for v in row] for row in rows]
    )
