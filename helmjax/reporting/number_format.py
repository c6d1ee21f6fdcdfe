"""Numbers with no more digits than their interval supports: "99.4 (98.9 to 99.8)", "8.2 (8.1 to 8.3)".

The decimals follow the interval's half-width: one significant digit of it, two when that digit is a 1 (so
0.14 is not rounded to 0.1, a 30% change). A number without an interval gets `default` significant digits.
"""

import math
from typing import Optional, Sequence


def decimals(low: float, high: float) -> int:
    """Decimal places that the interval (low, high) supports."""
    half = (high - low) / 2.0
    if not math.isfinite(half) or half <= 0:
        return 2
    exponent = math.floor(math.log10(half))
    leading = int(half / 10 ** exponent)
    return max(0, -exponent + (1 if leading == 1 else 0))


def _fixed(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text  # no "-0.0"


def parts(value: Optional[float], ci: Optional[Sequence] = None, *, scale: float = 1.0, sign: bool = False,
          default: int = 3) -> tuple:
    """(value, interval) texts, both rounded to what `ci` supports: ("99.4", "98.9 to 99.8"); the interval text is
    empty when there is no interval."""
    if value is None or not math.isfinite(value):
        return "n/a", ""
    value *= scale
    plus = "+" if sign else ""
    if ci is None or ci[0] is None or ci[1] is None:
        return f"{value:{plus}.{default}g}", ""
    low, high = ci[0] * scale, ci[1] * scale
    places = decimals(low, high)
    fmt = lambda v: (plus if v > 0 and sign else "") + _fixed(v, places)
    return fmt(value), f"{fmt(low)} to {fmt(high)}"


def number(value: Optional[float], ci: Optional[Sequence] = None, *, scale: float = 1.0, sign: bool = False,
           default: int = 3) -> str:
    """`value` (times `scale`) rounded to what `ci` supports, followed by the interval: "99.4 (98.9 to 99.8)"."""
    head, interval = parts(value, ci, scale=scale, sign=sign, default=default)
    return f"{head} ({interval})" if interval else head


def bound(value: Optional[float], like: Sequence, *, scale: float = 1.0, sign: bool = True) -> str:
    """A one-sided bound, rounded like the interval `like` of its estimate."""
    if value is None or not math.isfinite(value):
        return "n/a"
    places = decimals(like[0] * scale, like[1] * scale) if like and like[0] is not None else 2
    text = _fixed(value * scale, places)
    return ("+" + text) if sign and value > 0 else text
