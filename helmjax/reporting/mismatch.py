"""Matched and mismatched compression side by side: accuracy per level when only the training images, only the
test images, or both are compressed (`quantizer.apply_to` as a grid axis).

A loss that appears only when train and test differ ("train" or "test" below "both") comes from the mismatch
between the two, not from information the codec removed; a loss shared by "both" is lost information.
"""

from typing import List

from helmjax.reporting.number_format import number

AXIS = "quantizer.apply_to"
MEANING = {"both": "train and test compressed", "train": "only train compressed (tested on raw)",
           "test": "only test compressed (trained on raw)"}


def has_axis(facets) -> bool:
    return any(AXIS in setting["values"] for setting, _ in facets)


def markdown(facets) -> List[str]:
    """One table per (other axis values, arch): a row per level, a column per `apply_to`."""
    groups = {}
    for setting, a in facets:
        others = tuple((k, v) for k, v in setting["values"].items() if k != AXIS)
        groups.setdefault(others, []).append((setting["values"].get(AXIS), a))
    lines = ["## Matched and mismatched compression", "",
             "Accuracy (%, mean over seeds, interval, number of seeds) per level when both splits, only the training "
             "split or only the test split are compressed. Where 'both' holds up and a one-sided column falls, the "
             "loss comes from the mismatch between training and test images, not from information the codec "
             "removed; where 'only train' holds up and 'both' falls, the compressed test images lack what the "
             "classes need, and training on compressed images was not the problem.", ""]
    from helmjax.reporting.report import markdown_table
    for others, members in groups.items():
        columns = [value for value, _ in members]
        first = members[0][1]
        for arch in first.archs:
            label = ", ".join(f"{k}={v}" for k, v in others)
            lines.append(f"**{arch}**" + (f", {label}" if label else ""))
            lines.append("")
            levels = list(dict.fromkeys(level for _, a in members for level in a.levels))
            table = []
            for level in levels:
                row = [first.level_text(level)]
                for _, a in members:
                    cell = next((r for r in a.accuracy if r["arch"] == arch and r["level"] == level), None)
                    row.append(number(cell["mean"], cell["ci"], scale=100) + f" ({cell['n']})" if cell else "n/a")
                table.append(row)
            lines += markdown_table(["level"] + [MEANING.get(c, str(c)) for c in columns], table) + [""]
    return lines
