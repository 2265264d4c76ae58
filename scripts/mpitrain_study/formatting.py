"""How the study tools write numbers (and lists of names) into their tables and messages."""

import math


def lr_text(lr):
    """A learning rate as passed to --lr and shown in run names: 6 significant digits."""
    return f"{lr:.6g}"


def duration_text(seconds):
    """Wall time of a run or sweep: 45s, 3m07s."""
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def seconds_text(seconds):
    """Seconds as a short human number: 3.21 ms, 45.6 us, 12.3 s; '-' for None."""
    if seconds is None:
        return "-"
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def cell(v, spec="{:.4g}", none="-"):
    """A number in a Markdown table cell: `spec`, with large numbers in full
    (12800, not 1.28e+04) under the default spec; `none` for None or non-finite."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    if spec == "{:.4g}" and abs(v) >= 1e4:
        return f"{v:.0f}"
    return spec.format(v)


def with_unit(v, unit=""):
    """A benchmark figure: unit 's' as ms or s, '%' as a percentage, else 3
    significant digits (thousands separated from 100 on); 'n/a' for None or nan."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if unit == "s":
        return f"{v * 1e3:.3f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "%":
        return f"{100 * v:.1f}%"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.3g}{unit}"


def listed(names, most=8):
    """Names for a one-line message: 'a, b, c', at most `most` of them, then 'and N more'."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
