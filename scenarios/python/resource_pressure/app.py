"""resource-pressure: the machine runs short of CPU, memory or disk.

For `duration`, the host target `host` is put under `load`: `cpu` (`cores`
busy at `percent`), `memory` (`bytes` held resident) or `disk` (`bytes`
written under the host target's path). The scenario probes `probe_target`
throughout with the probe the drill chooses and reports the failed share
and the slowest healthy probe.

Passes when failed probes stay within `max_failure_percent`, the slowest
healthy probe within `max_latency`, and the probe is healthy within
`recover_within` after the load is gone. Needs: `cpu-stress`,
`memory-stress` or `disk-fill` (per `load`) on `host`.
"""

import firedrill
from firedrill import Metadata, Outcome, faults, host
from firedrill.probes import Check

LOADS = {"cpu": "cpu-stress", "memory": "memory-stress", "disk": "disk-fill"}


class ResourcePressure(firedrill.Scenario):
    def describe(self) -> Metadata:
        target = host.param("host", "machine")
        m = Check.declare(
            Metadata(
                "resource-pressure",
                "0.1.0",
                "Puts the machine under CPU, memory or disk pressure for a while and checks the service's failures, latency and recovery.",
            )
        )
        m = (
            m.param("host", "string", "machine", "The host target to put under pressure")
            .param("load", "string", "cpu", "cpu, memory or disk")
            .param("cores", "integer", "1", "load = cpu: cores to keep busy")
            .param("percent", "integer", "90", "load = cpu: how busy, 1 to 100")
            .param("bytes", "integer", "268435456", "load = memory or disk: how much")
            .param("duration", "duration", "10s", "How long the pressure lasts")
            .param("probe_target", "string", "", "The target to probe")
            .param("interval", "duration", "250ms", "Time between probes")
            .param("max_failure_percent", "float", "0", "The most failed probes the service may have, in percent")
            .param("max_latency", "duration", "1s", "The slowest a healthy probe may be")
            .param("recover_within", "duration", "10s", "How soon after the pressure the probe must be healthy again")
        )
        load = host.param("load", "cpu")
        return m.need(LOADS[load], target) if load in LOADS else m

    def run(self) -> Outcome:
        target_host = host.param("host", "machine")
        load = host.param("load", "cpu")
        probe_target = host.param("probe_target", "")
        if not probe_target:
            raise firedrill.Error("invalid-argument", "parameter `probe_target` names the service to watch")
        size = host.param_int("bytes", 256 << 20)
        if load == "cpu":
            builder = faults.cpu_stress(target_host, host.param_int("cores", 1), host.param_int("percent", 90))
        elif load == "memory":
            builder = faults.memory_stress(target_host, size)
        elif load == "disk":
            builder = faults.disk_fill(target_host, size)
        else:
            raise firedrill.Error("invalid-argument", f"parameter `load` is {load!r}; expected cpu, memory or disk")
        check = Check.from_params()
        duration = host.param("duration", "10s")
        fault = builder.for_duration(duration).apply()
        seen = check.watch(probe_target, duration, host.param("interval", "250ms"))
        fault.revert()
        back = check.until_healthy(probe_target, host.param("recover_within", "10s"))
        failed = seen["failure_percent"]
        slowest = seen["max_latency_ms"]
        budget = host.param_float("max_failure_percent", 0.0)
        max_latency_ms = firedrill.parse_duration(host.param("max_latency", "1s")) / 1e6
        if back is None:
            outcome = Outcome.failed(f"`{probe_target}` was still unhealthy after the {load} pressure ended")
        elif failed > budget:
            outcome = Outcome.failed(f"{failed:.0f}% of probes failed under {load} pressure; the budget is {budget}%")
        elif slowest > max_latency_ms:
            outcome = Outcome.failed(f"the slowest probe took {slowest:.0f} ms under {load} pressure; at most {max_latency_ms:.0f} ms")
        else:
            outcome = Outcome.passed(
                f"`{probe_target}` held up under {load} pressure: {failed:.0f}% failed, slowest {slowest:.0f} ms"
            )
        return outcome.measure("failed-probes", failed, "%").measure("slowest-probe", slowest, "ms")


WitWorld = ResourcePressure
