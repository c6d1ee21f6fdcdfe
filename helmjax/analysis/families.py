"""Which family of tests a report's error rate covers, and the α each fixed sequence gets so that it holds.

A report's q* come from fixed sequences, one per (setting, arch): within one, testing in a fixed order keeps the
chance that q* is wrong (some level passed that is in truth worse than the reference by more than δ) at
α = 1 - confidence. A report of k sequences makes k such claims, and ranks or compares them (architectures,
settings, codecs). `analysis.family` says which family α covers:

- "per_sequence" (the default): every sequence is tested at α. The report says so, and how far the chance that any
  of its k q* is wrong can go: 1 - (1 - α)^k when the sequences' errors are independent, k·α whatever their
  dependence (Bonferroni's inequality).
- "report": every sequence is tested at α/k (Bonferroni), the fixed sequence within it: the chance that any q* of
  the report is wrong is at most α, whatever the dependence between sequences.

Why Bonferroni across the families and not Holm: a fixed sequence spends the whole of its α on each level in turn,
so it needs one α per family, fixed before any test; α/k is that, and it is valid under any dependence (the
sequences of one sweep share the test examples, settings share raw runs: dependent in ways the analysis does not
model). Holm's step-down needs one p-value per family, but a family's claim is a level reached, not one hypothesis:
the smallest α at which a family reaches a level is one number per level, and which level's number stands for the
family would be chosen after seeing the data. The step-down that respects fixed sequences is the graphical procedure
(F. Bretz, W. Maurer, W. Brannath, M. Posch (2009), A graphical approach to sequentially rejective multiple test
procedures, Statistics in Medicine 28:586-604): a family that passes every one of its levels hands its α on to the
others. It gains only when a sequence passes all its sampled levels, where the grid rather than α limits that q*,
and it makes each sequence's q* depend on the other sequences' data; with Bonferroni k is fixed by the design and
each q* depends on its own data only.
"""

import dataclasses

PER_SEQUENCE = "per_sequence"
REPORT = "report"
RULES = (PER_SEQUENCE, REPORT)


def percent(fraction: float, digits: int = 2) -> str:
    """A probability in `digits` significant digits: 0.05 -> "5%", 0.2649 -> "26%"; 0.0125 -> "1.25%" at 3."""
    return f"{100.0 * fraction:.{digits}g}%"


def confidence_text(confidence: float) -> str:
    """A confidence level with the digits a Bonferroni split needs: "95%", "98.3%", "99.6%"."""
    return f"{100.0 * confidence:.3g}%"


@dataclasses.dataclass(frozen=True)
class Family:
    """The family of fixed sequences one report's α covers: the rule, α, k and what a sequence is there."""
    rule: str  # PER_SEQUENCE or REPORT
    confidence: float  # the report's: α = 1 - confidence
    sequences: int  # k: the fixed sequences the report tests
    noun: str = "architecture"  # what one sequence is, in the report's words
    where: str = "of this report"  # which report the k sequences belong to

    def __post_init__(self):
        assert self.rule in RULES, self.rule
        assert self.sequences >= 0, self.sequences

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def sequence_alpha(self) -> float:
        """The α each fixed sequence is tested at."""
        return self.alpha / self.sequences if self.rule == REPORT and self.sequences > 1 else self.alpha

    @property
    def sequence_confidence(self) -> float:
        return 1.0 - self.sequence_alpha

    def any_wrong(self) -> tuple:
        """(independent, bound): the chance that any of the k q* is wrong when each sequence is tested at
        `sequence_alpha`: 1 - (1 - α_s)^k if their errors are independent, min(1, k·α_s) whatever they are."""
        k, a = self.sequences, self.sequence_alpha
        return 1.0 - (1.0 - a) ** k, min(1.0, k * a)

    def sentence(self) -> str:
        """The one sentence a report prints about its family."""
        k, alpha, plural = self.sequences, percent(self.alpha), self.noun + "s"
        if k == 0:
            return "Family: no q* is tested yet, so no error rate is claimed."
        if k == 1:
            return (f"Family: one {self.noun} {self.where}: its q* has a {alpha} chance of being wrong (a level "
                    f"passed that is worse than the reference by more than δ), and that is the whole report's.")
        if self.rule == REPORT:
            return (f"Family: the whole report (analysis.family = \"report\"): each of the {k} {plural} {self.where} "
                    f"is tested at {alpha}/{k} = {percent(self.sequence_alpha, 3)} (Bonferroni, the fixed sequence "
                    f"within each), so the chance that any of their q* is wrong is at most {alpha}.")
        independent, bound = self.any_wrong()
        return (f"Family: per {self.noun} (analysis.family = \"per_sequence\"): each {self.noun}'s q* has its own "
                f"{alpha} chance of being wrong; across the {k} {plural} {self.where} the chance that any is wrong "
                f"can reach {percent(independent)} if their errors are independent, {percent(bound)} at most; "
                f"set analysis.family = \"report\" to hold {alpha} for them together.")

    def to_dict(self) -> dict:
        independent, bound = self.any_wrong()
        return {"rule": self.rule, "alpha": self.alpha, "sequences": self.sequences, "noun": self.noun,
                "where": self.where, "sequence_alpha": self.sequence_alpha,
                "sequence_confidence": self.sequence_confidence, "any_wrong_if_independent": independent,
                "any_wrong_at_most": bound, "sentence": self.sentence()}
