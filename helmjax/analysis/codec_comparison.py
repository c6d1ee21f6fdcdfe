"""Codecs at equal accuracy: in a sweep whose settings are different quantizers (a grid axis over `quantizer.name`),
each codec's fewest bits per pixel that are not worse than raw by more than δ, and the bits it saves against JPEG.

Per setting and arch, the codec's answer is its q* (the fixed-sequence non-inferiority test of `analyze`, δ and
confidence of the sweep, at the α its family gives: `analysis.families`) and the rate there. Bits are counted one way
for every format: the whole file as the encoder writes it (`FILE_BITS`). The payload is secondary: what each format's
parser separates is a different part of its file (JPEG's excludes its tables, WebP's and AVIF's hold frame headers:
`PAYLOAD_INCLUDES`), so payloads are not compared across formats as if they were one quantity. Bits saved against
the reference codec (JPEG when the sweep has it) are paired item by item at each codec's own q* (the same images in
the same order in every setting) with a percentile bootstrap over items; "saved" shares are relative to the
reference's file (or payload) size at its q*. Both codecs' q* carry the same guarantee (not worse than their raw by
more than δ), so this compares them at equal accuracy in that sense only: it is not a test that one codec's accuracy
equals the other's.

The grid limits the ranking: a codec's threshold (its fewest bits not worse than raw by more than δ) lies somewhere
between its first level that failed and its q*, two sampled levels (`bracket`). Codec X is said to need fewer bits
than Y only when X's bracket lies wholly below Y's (`fewer_bits`): X is shown within δ at fewer file bits than a
level at which Y was tested and not shown within δ. Where the brackets overlap, this grid cannot order them.
The saving at the two q* is one point of what the grid allows: with both thresholds anywhere in their brackets the
saving lies in `saved_range` (its grid bounds, beside the interval over images, which holds both q* fixed).

At equal rate (`equal_rate`): a codec's accuracy at its q* against the reference's accuracy at its sampled level of
the fewest bits not below that rate (so the reference spends at least as many bits), with a square-and-add interval
(`bounded.mover`, independent runs). Payload bits where both formats' payloads are the same part of the file (JPEG's
scan data: `SHARED_PAYLOAD`), else file bits.
"""

from typing import List, Optional

import numpy as np

from helmjax.analysis import bounded
from helmjax.analysis.findings import Analysis
from helmjax.analysis.sweep_files import read_level_bits

REFERENCE_CODECS = ("pillow_jpeg", "jax_jpeg")

FILE_BITS = ("the whole file as the encoder writes it: container, headers, tables and coded data, every byte (bit "
             "depth: the kept bits, which have no container)")
_JPEG_PAYLOAD = "the entropy-coded scan data only: no markers, no quantization or Huffman tables"
# What each format's payload parser (`quantizers.pillow_jpeg.payload_bytes`, `quantizers.codecs.*_payload_bytes`)
# counts: a different part of the file in each format.
PAYLOAD_INCLUDES = {
    "pillow_jpeg": _JPEG_PAYLOAD, "jax_jpeg": _JPEG_PAYLOAD,
    "learned_jpeg": _JPEG_PAYLOAD + " (its learned tables are in the header)",
    "webp": "the VP8/VP8L chunk: the VP8 frame header and partitions, without the RIFF and chunk headers",
    "avif": "the mdat box's content: the AV1 sequence header and frame OBUs, without the ftyp and meta boxes",
    "jpeg2000": "the tile-part data after each SOD marker, without the main and tile-part headers",
    "jpegxl": "none: the bare codestream has no byte boundary between its headers and the frame data",
    "bitdepth": "the kept bits themselves, as the file",
}


# Formats whose payload is the same part of the file (the scan data), so payloads compare across them.
SHARED_PAYLOAD = frozenset({"pillow_jpeg", "jax_jpeg", "learned_jpeg"})


def rate_kind(quantizer: str, reference: str) -> str:
    """The bits two codecs are compared on at equal rate: "payload" when both formats' payloads are the same part
    of the file, else "file"."""
    return "payload" if {quantizer, reference} <= SHARED_PAYLOAD else "file"


def payload_includes(quantizer: str) -> str:
    """What a format's payload holds, in words (see `PAYLOAD_INCLUDES`)."""
    return PAYLOAD_INCLUDES.get(quantizer, "what the format's payload parser separates (not described here)")


def bracket(a: Analysis, result) -> dict:
    """Where one (setting, arch)'s threshold lies in mean file bits, between two sampled levels: "low", the rate of
    the level where its fixed sequence stopped (tested, not shown within δ; None when every level passed: the
    threshold is at or below q*'s rate) and "high", the rate at q* (None when even the least compressed level
    failed: the threshold is above "low")."""
    tested = [t for t in getattr(result, "tests", None) or [] if t["tested"]]
    if not tested:  # nothing was compared with the reference: no threshold to place
        return {"low": None, "high": None, "failed": None, "failed_text": None}
    rate = lambda kind: {row["level"]: (row.get(kind) or {}).get("mean") for row in a.rates}
    file_rate, payload_rate = rate("file"), rate("payload")
    failed = next((t["level"] for t in tested if not t["passed"]), None)
    return {"low": file_rate.get(failed), "high": file_rate.get(result.q_star), "failed": failed,
            "failed_text": None if failed is None else a.level_text(failed),
            "payload_low": payload_rate.get(failed), "payload_high": payload_rate.get(result.q_star)}


def saved_range(own: dict, reference: dict, kind: str = "file") -> Optional[dict]:
    """Where the share of bits saved, 1 - threshold / reference's threshold, can lie with both thresholds anywhere in
    their brackets (`bracket`; `kind` "file" or "payload"): {"low", "high"}, None for an open end (a bracket with
    no failed level reaches down to no bits at all), None when either codec has no q*."""
    prefix = "" if kind == "file" else "payload_"
    own_low, own_high = own.get(prefix + "low"), own.get(prefix + "high")
    ref_low, ref_high = reference.get(prefix + "low"), reference.get(prefix + "high")
    if own_high is None or ref_high is None:
        return None
    return {"low": None if ref_low is None else 1.0 - own_high / ref_low,
            "high": None if own_low is None else 1.0 - own_low / ref_high}


def equal_rate(a: Analysis, result, reference: Analysis, arch: str, kind: str) -> Optional[dict]:
    """The codec's accuracy at its q* against the reference's at the sampled level of the fewest `kind` bits not
    below q*'s (the reference spends at least as many bits), the difference with its interval (square and add,
    independent runs); None without a q* or without such a reference level."""
    if result.q_star is None:
        return None
    rates = lambda analysis: {row["level"]: (row.get(kind) or {}).get("mean") for row in analysis.rates}
    own_rate = rates(a).get(result.q_star)
    accuracy = lambda analysis, level: next((row for row in analysis.accuracy
                                             if row["arch"] == arch and row["level"] == level), None)
    own = accuracy(a, result.q_star)
    if own_rate is None or own is None:
        return None
    candidates = [(rate, level) for level, rate in rates(reference).items()
                  if rate is not None and rate >= own_rate and accuracy(reference, level) is not None]
    if not candidates:
        return None
    rate, level = min(candidates, key=lambda pair: pair[0])
    other = accuracy(reference, level)
    diff = own["mean"] - other["mean"]
    return {"kind": kind, "rate": own_rate, "accuracy": own["mean"], "accuracy_ci": tuple(own["ci"]),
            "reference_level": level, "reference_level_text": reference.level_text(level), "reference_rate": rate,
            "reference_accuracy": other["mean"], "reference_accuracy_ci": tuple(other["ci"]), "diff": diff,
            "ci": bounded.mover(own["mean"], tuple(own["ci"]), other["mean"], tuple(other["ci"]))}


def fewer_bits(x: dict, y: dict) -> bool:
    """X needs fewer bits than Y: X's bracket lies wholly below Y's (X shown within δ at fewer file bits than a
    level of Y that was not shown within δ). Unknown ends never order two codecs."""
    return x["high"] is not None and y["low"] is not None and x["high"] < y["low"]


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
        ref_bracket = None if ref_result is None else bracket(reference[1], ref_result)
        for setting, a in facets:
            result = a.per_arch.get(arch)
            if result is None:
                continue
            confidence = a.settings["confidence"]
            row = {"setting": setting["tag"], "quantizer": a.quantizer, "arch": arch, "q_star": result.q_star,
                   "q_star_text": "none" if result.q_star is None else a.level_text(result.q_star),
                   "reference": reference[0]["tag"], "bracket": bracket(a, result), "fewer_bits_than": [],
                   "file": None, "payload": None, "payload_includes": payload_includes(a.quantizer), "saved": None,
                   "saved_share": None, "payload_saved": None, "payload_saved_share": None,
                   "saved_range": None, "payload_saved_range": None, "equal_rate": None}
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
            if setting is not reference[0] and ref_result is not None:
                row["saved_range"] = saved_range(row["bracket"], ref_bracket, "file")
                row["payload_saved_range"] = saved_range(row["bracket"], ref_bracket, "payload")
                row["equal_rate"] = equal_rate(a, result, reference[1], arch,
                                               rate_kind(a.quantizer, reference[1].quantizer))
            rows.append(row)
    for row in rows:
        row["fewer_bits_than"] = [other["setting"] for other in rows if other["arch"] == row["arch"]
                                  and other is not row and fewer_bits(row["bracket"], other["bracket"])]
    return rows
