"""Codecs at equal accuracy: in a sweep whose settings are different quantizers (a grid axis over `quantizer.name`),
each codec's fewest bits per pixel that are not worse than raw by more than δ, and the bits it saves against JPEG.

Per setting and arch, the codec's answer is its q* (the fixed-sequence non-inferiority test of `analyze`, δ and
confidence of the sweep) and the rate there: the whole file (what storage costs; every codec has it) and the payload
where the format separates it. Bits saved against the reference codec (JPEG when the sweep has it) are paired item by
item at each codec's own q* (the same images in the same order in every setting) with a percentile bootstrap over
items; "saved" shares are relative to the reference's file (or payload) size at its q*. Both codecs' q* carry the
same guarantee (not worse than their raw by more than δ), so this compares them at equal accuracy in that sense only:
it is not a test that one codec's accuracy equals the other's.
"""

from typing import List, Optional

import numpy as np

from helmjax.analysis.findings import Analysis
from helmjax.analysis.sweep_files import read_level_bits

REFERENCE_CODECS = ("pillow_jpeg", "jax_jpeg")


def _bpp_per_item(a: Analysis, saved: dict, level) -> Optional[dict]:
    """{"file": (N,), "payload": (N,) or None} in the sweep's rate unit at `level`, from its saved bits (`saved`:
    `read_level_bits` of the sweep)."""
    row = next((r for r in a.rates if r["level"] == level), None)
    bits = saved.get(level)
    if row is None or bits is None or not row["file"]["mean"]:
        return None
    units = float(np.mean(bits["file"])) / row["file"]["mean"]
    payload = bits["payload"] / units if np.all(np.isfinite(bits["payload"])) else None
    return {"file": bits["file"] / units, "payload": payload}


def _estimate(mean: float, draws: np.ndarray, confidence: float) -> dict:
    """{"mean", "ci"}: the percentile interval of bootstrap draws."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"mean": float(mean), "ci": (float(low), float(high))}


def _interval(values: np.ndarray, picks: np.ndarray, confidence: float) -> dict:
    return _estimate(values.mean(), values[picks].mean(axis=1), confidence)


def _share(saved: np.ndarray, reference: np.ndarray, picks: np.ndarray, confidence: float) -> dict:
    """Bits saved as a fraction of the reference's, over the same resamples."""
    return _estimate(saved.mean() / reference.mean(), saved[picks].mean(axis=1) / reference[picks].mean(axis=1),
                     confidence)


def compare(facets, *, resamples: int = 1000, seed: int = 0) -> List[dict]:
    """One row per (setting, arch) when the settings hold more than one quantizer; [] otherwise."""
    if len({a.quantizer for _, a in facets}) < 2:
        return []
    level_bits = {setting["tag"]: read_level_bits(a.sweep_dir, a.scale.level_of_tag) for setting, a in facets}
    return compare_bits(facets, level_bits, resamples=resamples, seed=seed)


def compare_bits(facets, level_bits: dict, *, resamples: int = 1000, seed: int = 0) -> List[dict]:
    """`compare` on bits already read: `level_bits[tag][level]` = {"file": (N,), "payload": (N,)} per item."""
    rng = np.random.default_rng(seed)
    reference = next((pair for pair in facets if pair[1].quantizer in REFERENCE_CODECS), facets[0])
    rows = []
    for arch in dict.fromkeys(arch for _, a in facets for arch in a.per_arch):
        ref_result = reference[1].per_arch.get(arch)
        ref_items = None if ref_result is None or ref_result.q_star is None else \
            _bpp_per_item(reference[1], level_bits[reference[0]["tag"]], ref_result.q_star)
        for setting, a in facets:
            result = a.per_arch.get(arch)
            if result is None:
                continue
            confidence = a.settings["confidence"]
            row = {"setting": setting["tag"], "quantizer": a.quantizer, "arch": arch, "q_star": result.q_star,
                   "q_star_text": "none" if result.q_star is None else a.level_text(result.q_star),
                   "reference": reference[0]["tag"], "file": None, "payload": None, "saved": None,
                   "saved_share": None, "payload_saved": None, "payload_saved_share": None}
            items = None if result.q_star is None else _bpp_per_item(a, level_bits[setting["tag"]], result.q_star)
            if items is not None:
                n = len(items["file"])
                picks = rng.integers(0, n, (resamples, n))
                row["file"] = _interval(items["file"], picks, confidence)
                if items["payload"] is not None:
                    row["payload"] = _interval(items["payload"], picks, confidence)
                if ref_items is not None and len(ref_items["file"]) == n and setting is not reference[0]:
                    file_saved = ref_items["file"] - items["file"]
                    row["saved"] = _interval(file_saved, picks, confidence)
                    row["saved_share"] = _share(file_saved, ref_items["file"], picks, confidence)
                    if items["payload"] is not None and ref_items["payload"] is not None:
                        payload_saved = ref_items["payload"] - items["payload"]
                        row["payload_saved"] = _interval(payload_saved, picks, confidence)
                        row["payload_saved_share"] = _share(payload_saved, ref_items["payload"], picks, confidence)
            rows.append(row)
    return rows
