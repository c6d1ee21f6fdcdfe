"""The package's import graph climbs only downwards: each part of helmjax imports only parts of its own layer or
of a lower one (no cycle, no import of a caller's layer), so a module can be read and tested with what lies below
it. A new top-level module or package must be given its layer here."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent / "helmjax"
# Lowest first. The bottom holds small single-purpose modules that import no other layer.
LAYERS = [
    {"errors", "trace", "atomic_io", "layout", "digests", "paths", "distributed", "config", "features",
     "audio_decode", "machine", "memory"},
    {"models"},
    {"training"},
    {"quantizers"},  # learned quantizers train classifiers through the one Trainer
    {"data"},  # the noise estimate measures JPEG's error
    {"sweeps"},  # the plan, the runner, quantized data, rates
    {"analysis"},
    {"reporting"},
    {"testing"},
]
LAYER = {part: k for k, parts in enumerate(LAYERS) for part in parts}
IMPORT = re.compile(r"^\s*(?:from helmjax\.(\w+)|import helmjax\.(\w+)|from helmjax import ([\w, ()]+))", re.M)


def _imports(path: pathlib.Path) -> set:
    out = set()
    for dotted, plain, names in IMPORT.findall(path.read_text()):
        out |= {dotted or plain} if dotted or plain else {n.strip(" ()") for n in names.split(",") if n.strip(" ()")}
    return out


def test_every_part_of_the_package_has_a_layer():
    parts = {p.name.removesuffix(".py") for p in ROOT.iterdir() if not p.name.startswith("_")
             and (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert parts - set(LAYER) == set(), "give the new part its layer in LAYERS"


def test_no_import_climbs_to_a_higher_layer():
    climbs = []
    for path in ROOT.rglob("*.py"):
        me = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if me == "__init__":
            continue
        for other in _imports(path) - {me}:
            if other in LAYER and LAYER[other] > LAYER[me]:
                climbs.append(f"{path.relative_to(ROOT.parent)} imports helmjax.{other}")
    assert climbs == []
