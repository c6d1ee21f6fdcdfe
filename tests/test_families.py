"""Families stated and controlled: the report says which sequences its α covers; with `analysis.family = "report"`
each of its k fixed sequences is tested at α/k (one sweep's archs, or every (setting, arch) of a side-by-side
report); codecs are ordered by their threshold brackets in file bits only where the brackets do not overlap."""

import json
import types

import numpy as np
import pytest

from helmjax.analysis import analyze, codec_comparison, families
from helmjax.analysis.findings import sequences
from helmjax.reporting import facets, report
from helmjax.testing.synthetic_sweep import SyntheticSweep, write_sweep

RESAMPLES = 200
ARCHS = {"A": 701_386, "B": 1_000_000, "F": 1_686_090}
SPEC = dict(levels=(5, 10, 20, 50, 100), archs=ARCHS, plateau={"A": 0.80, "B": 0.79, "F": 0.78})
ALPHA = 1.0 - 0.95


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("families") / "sweep", SyntheticSweep(**SPEC))


def test_family_arithmetic_and_sentences():
    six = families.Family(families.PER_SEQUENCE, 0.95, 6)
    assert six.sequence_alpha == ALPHA and six.any_wrong() == (1.0 - 0.95 ** 6, 6 * ALPHA)
    assert ("per architecture (analysis.family = \"per_sequence\"): each architecture's q* has its own 5% chance of "
            "being wrong; across the 6 architectures of this report the chance that any is wrong can reach 26% if "
            "their errors are independent, 30% at most") in six.sentence()
    whole = families.Family(families.REPORT, 0.95, 6)
    assert whole.sequence_alpha == ALPHA / 6 and whole.sequence_confidence == 1.0 - ALPHA / 6
    assert whole.any_wrong()[1] == pytest.approx(ALPHA, abs=1e-15)
    assert "each of the 6 architectures of this report is tested at 5%/6 = 0.833% (Bonferroni" in whole.sentence()
    one = families.Family(families.REPORT, 0.95, 1)
    assert one.sequence_alpha == ALPHA and "one architecture of this report" in one.sentence()
    assert "no q* is tested" in families.Family(families.REPORT, 0.95, 0).sentence()


def test_report_family_tests_each_arch_at_alpha_over_k_and_moves_q_star(sweep):
    k = len(ARCHS)
    per = analyze(sweep, resamples=RESAMPLES)  # the default family: per sequence
    whole = analyze(sweep, resamples=RESAMPLES, family="report")
    assert per.family["rule"] == "per_sequence" and whole.family["rule"] == "report"
    assert per.family["sequences"] == whole.family["sequences"] == k
    assert per.settings["sequence_confidence"] == 0.95
    assert whole.settings["sequence_confidence"] == 1.0 - ALPHA / k
    # The report family's bounds are the per-sequence analysis' at confidence 1 - α/k, and lower than at α.
    plain = analyze(sweep, resamples=RESAMPLES, confidence=1.0 - ALPHA / k)
    for arch in ARCHS:
        bounds = [t["lower_bound"] for t in whole.per_arch[arch].tests]
        assert bounds == [t["lower_bound"] for t in plain.per_arch[arch].tests]
        assert all(w < p for w, p in zip(bounds, (t["lower_bound"] for t in per.per_arch[arch].tests)))

    # A margin under which a level of arch A passes at α and fails at α/k while every level above it passes at
    # both (the bounds do not depend on the margin), so q* moves up by exactly that level: the deepest such level
    # with a margin below 2 points, as δ is in practice.
    at_alpha = [t["lower_bound"] for t in per.per_arch["A"].tests][::-1]  # least compressed first
    at_alpha_k = [t["lower_bound"] for t in whole.per_arch["A"].tests][::-1]
    levels = [t["level"] for t in per.per_arch["A"].tests][::-1]
    choice = None
    for j in range(len(levels)):
        low = max([-b for b in at_alpha[:j + 1]] + [-b for b in at_alpha_k[:j]])
        if 0 < low < -at_alpha_k[j] and low - at_alpha_k[j] < 2 * 0.02:
            choice = (j, (low - at_alpha_k[j]) / 2)
    assert choice is not None and choice[0] >= 1, (at_alpha, at_alpha_k)
    j, margin = choice
    loose = analyze(sweep, resamples=RESAMPLES, margin=100 * margin).per_arch["A"]
    strict = analyze(sweep, resamples=RESAMPLES, margin=100 * margin, family="report").per_arch["A"]
    passed_at_alpha = {t["level"]: t["passed"] for t in loose.tests}
    assert all(passed_at_alpha[level] for level in levels[:j + 1])
    assert strict.q_star == (levels[j - 1] if j else None)
    assert [t["level"] for t in strict.tests if t["tested"] and not t["passed"]] == [levels[j]]
    assert loose.q_star != strict.q_star


def test_report_and_analysis_json_name_the_family_and_k(sweep):
    for family, sentence in (
            ("per_sequence", "across the 3 architectures of this report the chance that any is wrong can reach 14% "
                             "if their errors are independent, 15% at most"),
            ("report", "each of the 3 architectures of this report is tested at 5%/3 = 1.67% (Bonferroni, the fixed "
                       "sequence within each), so the chance that any of their q* is wrong is at most 5%.")):
        analysis = analyze(sweep, resamples=RESAMPLES, family=family)
        text = report.report_markdown(analysis, {})
        assert sentence in text
        assert sentence in report.summary_text(analysis)
        saved = json.loads(json.dumps(analysis.to_dict()))
        assert saved["family"]["sequences"] == 3 and saved["family"]["rule"] == family
        assert sentence in saved["family"]["sentence"] and sentence in saved["method"]["family"]
    assert "one-sided 98.3% lower bound" in text  # the bound that decides, at 1 - α/3


def test_an_unknown_family_is_one_clear_error(sweep):
    from helmjax.errors import UserError
    with pytest.raises(UserError, match="analysis.family='reprot': use 'per_sequence' or 'report'"):
        analyze(sweep, resamples=RESAMPLES, family="reprot")


def _settings_sweep(root, family):
    """A side-by-side sweep of two settings, each a synthetic sweep of two archs: 4 (setting, arch) sequences."""
    settings = [{"tag": f"photons{p}", "values": {"data.photons": p}} for p in (25, 100)]
    for index, setting in enumerate(settings):
        write_sweep(root / "settings" / setting["tag"], SyntheticSweep(levels=(10, 20, 50), rng_seed=index))
    (root / "sweep.json").write_text(json.dumps({
        "name": "by_photons", "settings": settings, "grid": {"axes": [["data.photons", [25, 100]]]},
        "analysis": {"margin": 1.0, "confidence": 0.95, "family": family}}))
    return root


def test_side_by_side_report_counts_every_setting_and_arch(tmp_path):
    root = _settings_sweep(tmp_path / "by_photons", "report")
    analysed = facets.analyze_settings(root, resamples=RESAMPLES)
    assert [sequences(root / "settings" / s["tag"]) for s, _ in analysed] == [["A", "F"], ["A", "F"]]
    for _, a in analysed:
        assert a.family["sequences"] == 4 and a.settings["sequence_confidence"] == 1.0 - ALPHA / 4
        assert "the 4 (setting, architecture) sequences of the side-by-side report this setting is in" in \
            report.report_markdown(a, {})
    text = facets.report_markdown(root, analysed, {})
    assert ("each of the 4 (setting, architecture) sequences of this report is tested at 5%/4 = 1.25% "
            "(Bonferroni") in text
    assert facets.summary_text(analysed).splitlines()[0] == facets.report_family(analysed).sentence()
    rows = facets.facet_rows(analysed)
    assert len(rows) == 4 and all(row["family"]["sequences"] == 4 for row in rows)
    # The same sweep under the default family: every sequence at α, and the report says how far 4 can go.
    per = facets.analyze_settings(root, resamples=RESAMPLES, family="per_sequence")
    assert all(a.settings["sequence_confidence"] == 0.95 for _, a in per)
    assert ("across the 4 (setting, architecture) sequences of this report the chance that any is wrong can reach "
            "19% if their errors are independent, 20% at most") in facets.report_markdown(root, per, {})


# Levels, mean file bpp per level, and which levels the fixed sequence passed (most compression first; a level
# after a failure is not tested). Brackets: jpeg (0.47, 0.89), webp (0.2, 0.3), avif (0.4, 0.7), jpegxl (-, 0.25)
# with every level passing, jpeg2000 (0.9, -) failing at its least compressed level.
CODECS = {
    "jpeg": ("pillow_jpeg", {10: 0.47, 20: 0.89, 50: 1.5}, [False, True, True]),
    "webp": ("webp", {5: 0.2, 10: 0.3, 30: 0.6}, [False, True, True]),
    "avif": ("avif", {20: 0.4, 40: 0.7}, [False, True]),
    "jpegxl": ("jpegxl", {25.0: 0.25, 5.0: 0.5}, [True, True]),
    "jpeg2000": ("jpeg2000", {30.0: 0.35, 40.0: 0.9}, [None, False]),
}


def _codec_facets():
    rng = np.random.default_rng(0)
    out, bits = [], {}
    for tag, (quantizer, rates, passed) in CODECS.items():
        levels = list(rates)
        tests = [{"level": level, "tested": ok is not None, "passed": bool(ok)} for level, ok in zip(levels, passed)]
        passing = [t["level"] for t in tests if t["passed"]]
        q_star = passing[0] if passing else None
        bits[tag] = {}
        if q_star is not None:  # per-item bits at q*, their mean the level's rate
            file = rng.uniform(0.5, 1.5, 100)
            file *= rates[q_star] / file.mean()
            payload = np.full(100, np.nan) if quantizer == "jpegxl" else 0.8 * file
            bits[tag][q_star] = {"file": file, "payload": payload}
        rows = [{"level": level, "file": {"mean": rate, "ci": (rate, rate)}} for level, rate in rates.items()]
        analysis = types.SimpleNamespace(
            quantizer=quantizer, per_arch={"A": types.SimpleNamespace(q_star=q_star, tests=tests)},
            settings={"confidence": 0.95, "margin_points": 1.0}, rates=rows, level_text=lambda l: f"L{l:g}",
            rate_name="bpp", rate_label="bits per pixel", accuracy=[])
        out.append(({"tag": tag}, analysis))
    return out, bits


def test_codec_brackets_and_the_no_overlap_rule():
    analysed, bits = _codec_facets()
    rows = {row["setting"]: row for row in codec_comparison.compare_bits(analysed, bits, resamples=100)}
    brackets = {tag: (row["bracket"]["low"], row["bracket"]["high"]) for tag, row in rows.items()}
    assert brackets == {"jpeg": (0.47, 0.89), "webp": (0.2, 0.3), "avif": (0.4, 0.7), "jpegxl": (None, 0.25),
                        "jpeg2000": (0.9, None)}
    assert rows["jpeg"]["bracket"]["failed"] == 10 and rows["jpegxl"]["bracket"]["failed"] is None
    # Fewer bits only where the whole bracket lies below the other's: jpeg and avif overlap, and neither jpegxl
    # (no failing level: its threshold may be anywhere below 0.25) nor webp is above the other.
    assert {tag: row["fewer_bits_than"] for tag, row in rows.items()} == {
        "jpeg": ["jpeg2000"], "webp": ["jpeg", "avif", "jpeg2000"], "avif": ["jpeg2000"],
        "jpegxl": ["jpeg", "avif", "jpeg2000"], "jpeg2000": []}
    assert not codec_comparison.fewer_bits({"low": 0.4, "high": 0.7}, {"low": 0.7, "high": 0.9})  # touching
    text = "\n".join(facets.codec_lines(analysed, list(rows.values())))
    assert "jpeg's threshold lies between 0.47 and 0.89 bpp" in text
    assert "jpegxl's threshold lies at or below 0.25 bpp (every sampled level passed)" in text
    assert "jpeg2000's threshold lies above 0.9 bpp (its least compressed level, L40, failed)" in text
    assert ("webp needs fewer bits than jpeg (webp is within δ at 0.3 bpp, jpeg not shown within δ at 0.47 bpp)"
            in text)
    assert "Not ordered by this grid: jpeg and avif, webp and jpegxl." in text
    assert "said to need fewer bits than another only when its bracket lies wholly below" in text
    # One definition of bits for every format; the payload is secondary, with what it holds per format.
    assert f"Bits are counted one way for every format: {codec_comparison.FILE_BITS}" in text
    assert "¹ Payload, as each format's parser separates it: pillow_jpeg: the entropy-coded scan data only" in text
    assert "webp: the VP8/VP8L chunk: the VP8 frame header and partitions" in text
    assert rows["jpegxl"]["payload"] is None and rows["webp"]["payload"] is not None
