"""How runs are named: `<level tag>-<arch>-s<seed>`, e.g. `q20-A-s0`, `kbps64-B-s1`, `raw-C-s2`."""

RAW = "raw"
LEVEL_PREFIX = {"quality": "q", "kbps": "kbps", "bits": "b"}


def level_tag(level_name: str, level) -> str:
    return RAW if level == RAW else f"{LEVEL_PREFIX.get(level_name, level_name)}{level}"


def run_name(level_name: str, level, arch: str, seed) -> str:
    return f"{level_tag(level_name, level)}-{arch}-s{seed}"
