"""The sweet spot by non-inferiority: the strongest compression not worse than the reference by more than δ.

A fixed-sequence test: levels are tested from the least compressed down (the highest, for JPEG quality); level L
passes when the one-sided lower confidence bound of acc(L) - acc(reference) is above -δ; the sequence stops at the
first level that fails, and q* is the last level that passed. Testing in a fixed order, each level only after every
less compressed one passed, keeps the familywise error at α = 1 - confidence with no correction. Absence of evidence never passes a level:
a noisy level fails, so fewer seeds or test examples make q* more cautious, never more aggressive. The bound is
`bounded.Difference.lower` (inside [-1, 1]; the contrast's Welch t bound away from 0% and 100%), and the bound that
decides is the one each `LevelTest` records and the report prints.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Union

from helmjax.analysis.bounded import Difference
from helmjax.analysis.contrasts import Estimate


@dataclasses.dataclass(frozen=True)
class LevelTest:
    level: object
    diff: float  # acc(level) - acc(reference), a fraction
    ci: tuple  # two-sided interval at the confidence level, inside [-1, 1]
    lower_bound: float  # one-sided lower confidence bound: the one that decides `passed`
    tested: bool  # False once the sequence has stopped above this level
    passed: bool  # not worse than the reference by more than the margin (only when tested)
    seeds_covered: bool


def fixed_sequence(levels: Sequence, estimates: Dict[object, Union[Difference, Estimate]], margin: float,
                   confidence: float) -> tuple:
    """(q*, tests) for `levels` ordered from most to least compression (the quantizer's order, see
    `levels.LevelScale.ordered`); tested from the last down; q* is None when the last already fails."""
    tests: List[LevelTest] = []
    q_star: Optional[object] = None
    stopped = False
    for level in reversed(list(levels)):
        estimate = estimates[level]
        lower = estimate.lower(confidence)
        passed = not stopped and lower > -margin
        tests.append(LevelTest(level=level, diff=estimate.value, ci=estimate.interval(confidence), lower_bound=lower,
                               tested=not stopped, passed=passed, seeds_covered=estimate.seeds_covered))
        if passed:
            q_star = level
        else:
            stopped = True
    return q_star, tests[::-1]
