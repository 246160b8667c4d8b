"""What the SDK's modules share: the error type and durations."""

import re
from typing import Union

from componentize_py_types import Err
from wit_world.imports import types as _types

_KINDS = {
    _types.Error_Denied: "denied",
    _types.Error_UnknownTarget: "unknown-target",
    _types.Error_InvalidArgument: "invalid-argument",
    _types.Error_Unsupported: "unsupported",
    _types.Error_Failed: "failed",
    _types.Error_Halted: "halted",
}
_BY_KIND = {v: k for k, v in _KINDS.items()}


class Error(Exception):
    """A host call failed, or the scenario gives up. `kind` is one of
    denied, unknown-target, invalid-argument, unsupported, failed, halted
    (the run was halted: return promptly)."""

    def __init__(self, kind: str, message: str = "") -> None:
        if kind not in _BY_KIND:
            raise ValueError(f"error kind {kind!r} is not one of {', '.join(_BY_KIND)}")
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message

    def _wit(self) -> "_types.Error":
        case = _BY_KIND[self.kind]
        return case() if case is _types.Error_Halted else case(self.message)


def call(f, *args):
    """Call a host import, turning its error into `Error`."""
    try:
        return f(*args)
    except Err as e:
        v = e.value
        raise Error(_KINDS[type(v)], getattr(v, "value", "")) from None


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Nanoseconds in "250ms", "2s", "1m30s" (as the engine reads them)."""
    s = text.strip()
    total, pos = 0.0, 0
    for m in _PART.finditer(s):
        if s[pos:m.start()].strip():
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or s[pos:].strip():
        raise Error("invalid-argument", f"{text!r} is not a duration like \"250ms\" or \"2s\"")
    return int(total)


def to_nanos(d: Union[str, int, float]) -> int:
    """A duration as a string ("250ms") or seconds (0.25) in nanoseconds."""
    if isinstance(d, str):
        return parse_duration(d)
    return int(d * 1_000_000_000)
