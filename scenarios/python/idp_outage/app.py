"""idp-outage: the identity provider's token endpoint fails.

For `duration`, requests through the HTTP proxy `idp` (in front of the
identity provider) whose path starts with `token_path` fail as `mode` says:
`error` answers `status` (503) with an OAuth-style JSON error, `slow` holds
them `slow_by` (a token endpoint that times out), `reset` closes the
connection at the request. Other paths (discovery, JWKS) keep working. The
scenario probes `probe_target` (by default the token endpoint through the
proxy) with the probe the drill chooses, reports the failed share, and
passes when the probe is healthy again within `recover_within` after.

Needs: `http-error`, `delay` or `http-abort` (per `mode`) on `idp`.
"""

import firedrill
from firedrill import Metadata, Outcome, faults, host
from firedrill.probes import Check

MODES = {"error": "http-error", "slow": "delay", "reset": "http-abort"}


class IdpOutage(firedrill.Scenario):
    def describe(self) -> Metadata:
        idp = host.param("idp", "idp-link")
        m = Check.declare(
            Metadata(
                "idp-outage",
                "0.1.0",
                "Makes an identity provider's token endpoint fail (errors, time-outs or resets) while the rest of it works, and checks the service's recovery.",
            )
        )
        m = (
            m.param("idp", "string", "idp-link", "The HTTP proxy target in front of the identity provider")
            .param("token_path", "string", "/token", "The token endpoint's path (prefix)")
            .param("mode", "string", "error", "error (a status), slow (held) or reset (connection closed)")
            .param("status", "integer", "503", "mode = error: the status")
            .param("slow_by", "duration", "10s", "mode = slow: how long requests are held")
            .param("duration", "duration", "5s", "How long the outage lasts")
            .param("probe_target", "string", "", "The target to probe (default: the identity provider's proxy)")
            .param("interval", "duration", "200ms", "Time between probes")
            .param("recover_within", "duration", "10s", "How soon after the outage the probe must be healthy again")
        )
        mode = host.param("mode", "error")
        return m.need(MODES[mode], idp) if mode in MODES else m

    def run(self) -> Outcome:
        idp = host.param("idp", "idp-link")
        mode = host.param("mode", "error")
        path = host.param("token_path", "/token")
        duration = host.param("duration", "5s")
        target = host.param("probe_target", "") or idp
        check = Check.from_params()
        if mode == "error":
            status = host.param_int("status", 503)
            body = '{"error":"temporarily_unavailable","error_description":"The authorization server is unavailable"}'
            builder = faults.http_error(idp, status, body, [("content-type", "application/json"), ("retry-after", "1")])
        elif mode == "slow":
            builder = faults.delay(idp, host.param("slow_by", "10s"))
        elif mode == "reset":
            builder = faults.http_abort(idp, "request", reset=True)
        else:
            raise firedrill.Error("invalid-argument", f"parameter `mode` is {mode!r}; expected error, slow or reset")
        fault = builder.matching(path=path).for_duration(duration).apply()
        seen = check.watch(target, duration, host.param("interval", "200ms"))
        fault.revert()
        back = check.until_healthy(target, host.param("recover_within", "10s"))
        failed = seen["failure_percent"]
        if back is None:
            outcome = Outcome.failed(f"`{target}` was still unhealthy after the identity provider came back")
        else:
            outcome = Outcome.passed(
                f"{failed:.0f}% of {seen['samples']} probes failed while {path} on `{idp}` was down ({mode}); healthy {back:.0f} ms after"
            ).measure("recovery-time", back, "ms")
        if seen["failures"] == 0:
            outcome.finding("warning", "the outage did not reach the probe", f"is `{target}` behind {path} on `{idp}`?")
        return outcome.measure("failed-probes", failed, "%")


WitWorld = IdpOutage
