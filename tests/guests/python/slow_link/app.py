"""The README's slow-link scenario, written in Python against firedrill's
WIT with componentize-py's generated bindings (no SDK): slow a link down,
probe through it, report the latency. `mode` makes it fail on purpose, as
the engine's tests need: `error` returns an error, `exception` raises one it
does not catch, `memory` allocates past the run's memory limit."""

import wit_world
from componentize_py_types import Err
from wit_world import Measurement, Metadata, Need, Outcome, ParamSpec, ParamType, Verdict
from wit_world.imports import faults, host, probes, types


def param(name: str, default: str) -> str:
    value = host.param(name)
    return default if value is None else value


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Metadata:
        link = param("link", "api-link")
        return Metadata(
            "slow-link-py",
            "0.1.0",
            "Adds latency to a link and probes through it.",
            [
                ParamSpec("link", ParamType.STRING, "api-link", "The proxy to slow down", False),
                ParamSpec("latency-ms", ParamType.INTEGER, "200", "Latency to add, ms", False),
                ParamSpec("mode", ParamType.STRING, "pass", "pass, error, exception or memory", False),
            ],
            [Need(types.FaultKind.DELAY, link)],
        )

    def run(self) -> Outcome:
        link = param("link", "api-link")
        mode = param("mode", "pass")
        if mode == "error":
            raise Err(types.Error_InvalidArgument("mode=error asks for an error"))
        if mode == "exception":
            raise ValueError("an exception the scenario did not catch")
        if mode == "memory":
            hog = [bytearray(1 << 20) for _ in range(4096)]
            return Outcome(Verdict.PASS, f"allocated {len(hog)} MiB", [], [])
        latency_ns = int(param("latency-ms", "200")) * 1_000_000
        host.log(host.Level.INFO, f"slowing {link} by {latency_ns // 1_000_000} ms")
        fault = faults.delay(link, latency_ns, 0, types.Direction.BOTH, types.FaultOptions(None, None, None))
        response = probes.http(link, probes.HttpRequest("GET", "/health", [], b"", None))
        fault.revert()
        verdict = Verdict.PASS if response.status < 400 else Verdict.FAIL
        return Outcome(
            verdict,
            f"status {response.status} under latency",
            [],
            [Measurement("latency", response.latency / 1e6, "ms")],
        )
