"""The README's slow-link scenario in Python, with firedrill's Python SDK:
slow a link down, probe through it, report the latency. `mode` makes it
fail on purpose, as the engine's tests need: `error` returns an error,
`exception` raises one it does not catch, `memory` allocates past the run's
memory limit."""

import firedrill
from firedrill import Metadata, Outcome, faults, host, probes


class SlowLink(firedrill.Scenario):
    def describe(self) -> Metadata:
        link = host.param("link", "api-link")
        return (
            Metadata("slow-link-py", "0.1.0", "Adds latency to a link and probes through it.")
            .param("link", "string", "api-link", "The proxy to slow down")
            .param("latency", "duration", "200ms", "Latency to add")
            .param("mode", "string", "pass", "pass, error, exception or memory")
            .need("delay", link)
        )

    def run(self) -> Outcome:
        link = host.param("link", "api-link")
        mode = host.param("mode", "pass")
        if mode == "error":
            raise firedrill.Error("invalid-argument", "mode=error asks for an error")
        if mode == "exception":
            raise ValueError("an exception the scenario did not catch")
        if mode == "memory":
            hog = [bytearray(1 << 20) for _ in range(4096)]
            return Outcome.passed(f"allocated {len(hog)} MiB")
        latency = host.param("latency", "200ms")
        host.info(f"slowing {link} by {latency}")
        fault = faults.delay(link, latency).apply()
        response = probes.get(link, "/health")
        fault.revert()
        outcome = Outcome.passed(f"status {response.status} under latency") if response.ok else Outcome.failed(f"status {response.status} under latency")
        return outcome.measure("latency", response.latency_ms, "ms")


WitWorld = SlowLink
