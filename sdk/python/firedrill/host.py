"""Host services: parameters, logging, time, randomness and marks."""

from typing import Optional, Union

from wit_world.imports import host as _h

from ._core import Error, call, parse_duration, to_nanos


def param(name: str, default: Optional[str] = None) -> Optional[str]:
    """A parameter's value (defaults applied by the engine), else `default`."""
    value = _h.param(name)
    return default if value is None else value


def param_int(name: str, default: int) -> int:
    value = _h.param(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise Error("invalid-argument", f"parameter {name!r} must be an integer, got {value!r}") from None


def param_float(name: str, default: float) -> float:
    value = _h.param(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise Error("invalid-argument", f"parameter {name!r} must be a number, got {value!r}") from None


def param_bool(name: str, default: bool) -> bool:
    value = _h.param(name)
    if value is None:
        return default
    if value in ("true", "false"):
        return value == "true"
    raise Error("invalid-argument", f"parameter {name!r} must be true or false, got {value!r}")


def param_duration(name: str, default: str) -> int:
    """A duration parameter in nanoseconds."""
    return parse_duration(param(name, default) or default)


def _log(level: "_h.Level", message: str) -> None:
    _h.log(level, message)


def debug(message: str) -> None:
    _log(_h.Level.DEBUG, message)


def info(message: str) -> None:
    _log(_h.Level.INFO, message)


def warn(message: str) -> None:
    _log(_h.Level.WARN, message)


def error(message: str) -> None:
    _log(_h.Level.ERROR, message)


def sleep(d: Union[str, float]) -> None:
    """Sleep; raises `Error("halted")` if the run is halted meanwhile."""
    call(_h.sleep, to_nanos(d))


def now_ms() -> float:
    """Milliseconds since the run started."""
    return _h.now() / 1e6


def random() -> int:
    """A 64-bit value from the run's seeded generator (replays repeat it)."""
    return _h.random()


def event(name: str, detail: str = "") -> None:
    """A mark in the timeline."""
    _h.event(name, detail)
