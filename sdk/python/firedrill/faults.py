"""Faults. Each lasting fault is a builder: set options, then `apply()`,
which returns a `Fault` to `revert()` (or use it as a context manager).
Whatever is not reverted is reverted when the run ends, however it ends.

    fault = faults.delay("db-link", "300ms").jitter("50ms").for_duration("10s").apply()
    with faults.http_error("api", 503).probability(0.5).apply():
        ...
"""

from typing import List, Optional, Tuple, Union

from wit_world.imports import faults as _f
from wit_world.imports import types as _types

from ._core import Error, call, to_nanos

Duration = Union[str, int, float]


def fault_kind(kind: str) -> "_types.FaultKind":
    """`delay`, `fail-auth`, `kill`… as the engine's fault kind."""
    name = kind.replace("-", "_").upper()
    try:
        return _types.FaultKind[name]
    except KeyError:
        names = ", ".join(k.name.lower().replace("_", "-") for k in _types.FaultKind)
        raise ValueError(f"fault kind {kind!r} is not one of {names}") from None


class Fault:
    """An applied fault."""

    def __init__(self, handle: "_f.Fault") -> None:
        self._handle = handle

    @property
    def id(self) -> int:
        return self._handle.id()

    @property
    def active(self) -> bool:
        return self._handle.active()

    def revert(self) -> None:
        """Undo it now; reverting twice is harmless."""
        call(self._handle.revert)

    def __enter__(self) -> "Fault":
        return self

    def __exit__(self, *exc) -> None:
        self.revert()


class _Builder:
    def __init__(self, target: str) -> None:
        self.target = target
        self._duration: Optional[int] = None
        self._probability: Optional[float] = None
        self._match: Optional[_types.RequestMatch] = None
        self._direction = _types.Direction.DOWNSTREAM

    def for_duration(self, d: Duration) -> "_Builder":
        """Revert it by itself after `d`."""
        self._duration = to_nanos(d)
        return self

    def probability(self, p: float) -> "_Builder":
        """Apply it to this fraction of requests or connections (0..1)."""
        self._probability = float(p)
        return self

    def matching(self, method: Optional[str] = None, path: Optional[str] = None, header: Optional[Tuple[str, str]] = None) -> "_Builder":
        """On HTTP proxies: only requests with this method, path prefix or header."""
        self._match = _types.RequestMatch(method, path, header)
        return self

    def direction(self, direction: str) -> "_Builder":
        """`upstream`, `downstream` (the default: responses) or `both`."""
        self._direction = _types.Direction[direction.upper()]
        return self

    def _options(self) -> "_types.FaultOptions":
        return _types.FaultOptions(self._duration, self._probability, self._match)


class _Delay(_Builder):
    def __init__(self, target: str, latency: Duration) -> None:
        super().__init__(target)
        self._latency = to_nanos(latency)
        self._jitter = 0

    def jitter(self, j: Duration) -> "_Delay":
        self._jitter = to_nanos(j)
        return self

    def apply(self) -> Fault:
        return Fault(call(_f.delay, self.target, self._latency, self._jitter, self._direction, self._options()))


def delay(target: str, latency: Duration) -> _Delay:
    """Add latency to a proxy target's traffic."""
    return _Delay(target, latency)


class _Simple(_Builder):
    def __init__(self, target: str, apply) -> None:
        super().__init__(target)
        self._apply = apply

    def apply(self) -> Fault:
        return Fault(self._apply(self))


def pause(target: str) -> _Simple:
    """Stop a process target (SIGSTOP, or its cgroup frozen) until reverted."""
    return _Simple(target, lambda b: call(_f.pause, b.target, b._options()))


_AUTH = {"reject": _f.AuthMode.REJECT, "strip": _f.AuthMode.STRIP, "corrupt": _f.AuthMode.CORRUPT, "expire": _f.AuthMode.EXPIRE}


def fail_auth(target: str, mode: str = "reject", status: Optional[int] = None) -> _Simple:
    """Make authentication fail on an HTTP proxy: reject, strip, corrupt or expire."""
    if mode not in _AUTH:
        raise Error("invalid-argument", f"auth mode {mode!r} is not one of reject, strip, corrupt, expire")
    return _Simple(target, lambda b: call(_f.fail_auth, b.target, _AUTH[mode], status, b._options()))


def http_error(target: str, status: int, body: Optional[str] = None, headers: Optional[List[Tuple[str, str]]] = None) -> _Simple:
    """Answer matching requests with `status` instead of the upstream's answer."""
    return _Simple(target, lambda b: call(_f.http_error, b.target, status, body, list(headers or []), b._options()))


def http_abort(target: str, at: str = "request", reset: bool = False) -> _Simple:
    """Close (or reset) the connection at the `request` or mid-`response`."""
    point = _f.AbortPoint[at.upper()]
    return _Simple(target, lambda b: call(_f.http_abort, b.target, point, reset, b._options()))


def http_modify(target: str, status: Optional[int] = None, set_headers: Optional[List[Tuple[str, str]]] = None, remove_headers: Optional[List[str]] = None, body: Optional[str] = None) -> _Simple:
    """Change the upstream's response: its status, headers or body."""
    patch = _f.ResponsePatch(status, list(set_headers or []), list(remove_headers or []), body)
    return _Simple(target, lambda b: call(_f.http_modify, b.target, patch, b._options()))


def _link(target: str, fault: "_f.LinkFault") -> _Simple:
    return _Simple(target, lambda b: call(_f.link, b.target, fault, b._direction, b._options()))


def connect_delay(target: str, latency: Duration) -> _Simple:
    return _link(target, _f.LinkFault_ConnectDelay((to_nanos(latency), 0)))


def bandwidth(target: str, bytes_per_second: int) -> _Simple:
    return _link(target, _f.LinkFault_Bandwidth(int(bytes_per_second)))


def blackhole(target: str) -> _Simple:
    return _link(target, _f.LinkFault_Blackhole())


def refuse(target: str) -> _Simple:
    return _link(target, _f.LinkFault_Refuse())


def reset_peer(target: str, after: Duration) -> _Simple:
    return _link(target, _f.LinkFault_ResetPeer(to_nanos(after)))


def timeout(target: str, after: Duration) -> _Simple:
    return _link(target, _f.LinkFault_Timeout(to_nanos(after)))


def slow_close(target: str, delay: Duration) -> _Simple:
    return _link(target, _f.LinkFault_SlowClose(to_nanos(delay)))


def limit_data(target: str, bytes: int) -> _Simple:
    return _link(target, _f.LinkFault_LimitData(int(bytes)))


def cpu_stress(target: str, cores: int, percent: int) -> _Simple:
    return _Simple(target, lambda b: call(_f.stress, b.target, _f.StressLoad_Cpu((cores, percent)), b._options()))


def memory_stress(target: str, bytes: int) -> _Simple:
    return _Simple(target, lambda b: call(_f.stress, b.target, _f.StressLoad_Memory(int(bytes)), b._options()))


def disk_fill(target: str, bytes: int) -> _Simple:
    return _Simple(target, lambda b: call(_f.stress, b.target, _f.StressLoad_Disk(int(bytes)), b._options()))


_SIGNALS = {s.name: s for s in _f.Signal}


def kill(target: str, signal: str = "KILL") -> None:
    """Send a signal (`KILL`, `TERM`, …) to a process target's whole tree."""
    name = signal.upper().removeprefix("SIG")
    if name not in _SIGNALS:
        raise Error("invalid-argument", f"signal {signal!r} is not one of {', '.join(_SIGNALS)}")
    call(_f.kill, target, _SIGNALS[name])


def restart(target: str) -> None:
    """Stop a process target and start it again."""
    call(_f.restart, target)
