"""firedrill's Python SDK: write a chaos scenario as a class, build it into a
WebAssembly component with componentize-py.

    import firedrill
    from firedrill import Metadata, Outcome, faults, host, probes

    class SlowLink(firedrill.Scenario):
        def describe(self) -> Metadata:
            link = host.param("link", "api-link")
            return (Metadata("slow-link", "0.1.0", "Adds latency to a link and probes through it.")
                    .param("link", "string", "api-link", "The proxy to slow down")
                    .param("latency", "duration", "200ms", "Latency to add")
                    .need("delay", link))

        def run(self) -> Outcome:
            link = host.param("link", "api-link")
            fault = faults.delay(link, host.param("latency", "200ms")).apply()
            response = probes.get(link, "/health")
            fault.revert()
            outcome = Outcome.passed("healthy under latency") if response.ok else \\
                Outcome.failed(f"status {response.status} under latency")
            return outcome.measure("latency", response.latency_ms, "ms")

    WitWorld = SlowLink  # the name componentize-py looks for

Build (the SDK and firedrill's WIT come from a firedrill checkout):

    componentize-py -d firedrill/wit -w scenario componentize -p firedrill/sdk/python app -o scenario.wasm

The engine's calls that fail raise `firedrill.Error` (`.kind` is `denied`,
`unknown-target`, `invalid-argument`, `unsupported`, `failed` or `halted`);
let it propagate and the run ends with that error, as a returned error. Any
other exception ends the run with its traceback in the run's timeline.
Durations are strings such as "250ms", "2s" or "1m30s", or seconds as a
number.
"""

from typing import List, Optional, Tuple

from componentize_py_types import Err
import wit_world

from . import faults, host, probes
from ._core import Error, parse_duration, to_nanos

__all__ = [
    "Error",
    "Finding",
    "Metadata",
    "Outcome",
    "Scenario",
    "faults",
    "host",
    "parse_duration",
    "probes",
]

_PARAM_TYPES = {
    "string": wit_world.ParamType.STRING,
    "integer": wit_world.ParamType.INTEGER,
    "float": wit_world.ParamType.FLOAT,
    "boolean": wit_world.ParamType.BOOLEAN,
    "duration": wit_world.ParamType.DURATION,
}


class Metadata:
    """What a scenario is and needs: name, version, description,
    parameters, and the fault kinds it will use on which targets."""

    def __init__(self, name: str, version: str, description: str) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.params: List[wit_world.ParamSpec] = []
        self.needs: List[wit_world.Need] = []

    def param(self, name: str, ty: str, default: Optional[str], doc: str, secret: bool = False) -> "Metadata":
        """Declare a parameter. `ty` is string, integer, float, boolean or
        duration; a `None` default makes it required; `secret=True` masks
        its value wherever a run is shown."""
        if ty not in _PARAM_TYPES:
            raise ValueError(f"parameter {name!r}: type {ty!r} is not one of {', '.join(_PARAM_TYPES)}")
        self.params.append(wit_world.ParamSpec(name, _PARAM_TYPES[ty], default, doc, secret))
        return self

    def need(self, kind: str, target: str) -> "Metadata":
        """Declare that the scenario makes a `kind` fault (`delay`,
        `fail-auth`, `kill`…) on `target`; the drill must grant it."""
        self.needs.append(wit_world.Need(faults.fault_kind(kind), target))
        return self


class Finding:
    """Something the scenario noticed: severity info, warning or critical."""

    def __init__(self, severity: str, title: str, detail: str = "") -> None:
        self.severity = severity
        self.title = title
        self.detail = detail


_SEVERITIES = {
    "info": wit_world.Severity.INFO,
    "warning": wit_world.Severity.WARNING,
    "critical": wit_world.Severity.CRITICAL,
}


class Outcome:
    """What a run concluded: a verdict, one line for people, findings and
    measurements."""

    def __init__(self, passed: bool, summary: str) -> None:
        self.passed_ = passed
        self.summary = summary
        self.findings: List[Finding] = []
        self.measurements: List[Tuple[str, float, str]] = []

    @staticmethod
    def passed(summary: str) -> "Outcome":
        return Outcome(True, summary)

    @staticmethod
    def failed(summary: str) -> "Outcome":
        return Outcome(False, summary)

    def measure(self, name: str, value: float, unit: str) -> "Outcome":
        """Record a number, e.g. `measure("recovery-time", 812.0, "ms")`."""
        self.measurements.append((name, float(value), unit))
        return self

    def finding(self, severity: str, title: str, detail: str = "") -> "Outcome":
        """Record something noticed (`info`, `warning` or `critical`)."""
        if severity not in _SEVERITIES:
            raise ValueError(f"severity {severity!r} is not one of info, warning, critical")
        self.findings.append(Finding(severity, title, detail))
        return self

    def _wit(self) -> wit_world.Outcome:
        return wit_world.Outcome(
            wit_world.Verdict.PASS if self.passed_ else wit_world.Verdict.FAIL,
            self.summary,
            [wit_world.Finding(_SEVERITIES[f.severity], f.title, f.detail) for f in self.findings],
            [wit_world.Measurement(n, v, u) for (n, v, u) in self.measurements],
        )


class Scenario:
    """Subclass it with `describe()` returning `Metadata` and `run()`
    returning `Outcome`, then name the class `WitWorld` in the module you
    build (`WitWorld = MyScenario`): componentize-py exports that class."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        describe, run = cls.__dict__.get("describe"), cls.__dict__.get("run")
        if describe is not None:

            def _describe(self) -> wit_world.Metadata:
                m = describe(self)
                if not isinstance(m, Metadata):
                    raise TypeError(f"describe() must return firedrill.Metadata, not {type(m).__name__}")
                return wit_world.Metadata(m.name, m.version, m.description, m.params, m.needs)

            cls.describe = _describe
        if run is not None:

            def _run(self) -> wit_world.Outcome:
                try:
                    o = run(self)
                except Error as e:
                    raise Err(e._wit()) from None
                if not isinstance(o, Outcome):
                    raise TypeError(f"run() must return firedrill.Outcome, not {type(o).__name__}")
                return o._wit()

            cls.run = _run
