"""Probes: what the scenario sees of its targets, recorded in the run's
timeline. A scenario reaches targets only through these."""

from typing import List, Optional, Tuple, Union

from wit_world.imports import probes as _p

from ._core import call, to_nanos


class Response:
    """An HTTP response: `status`, `headers`, `body` (bytes), `latency_ms`."""

    def __init__(self, r: "_p.HttpResponse") -> None:
        self.status = r.status
        self.headers = r.headers
        self.body = r.body
        self.latency_ms = r.latency / 1e6

    @property
    def ok(self) -> bool:
        """A 2xx or 3xx status."""
        return 200 <= self.status < 400

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def http(target: str, method: str, path: str, headers: Optional[List[Tuple[str, str]]] = None, body: bytes = b"", timeout: Union[str, float, None] = None) -> Response:
    """Send an HTTP/1.1 request to a target; a connection failure is a 502."""
    request = _p.HttpRequest(method, path, list(headers or []), body, None if timeout is None else to_nanos(timeout))
    return Response(call(_p.http, target, request))


def get(target: str, path: str, headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    return http(target, "GET", path, headers)


def tcp_connect(target: str, timeout: Union[str, float, None] = None) -> float:
    """Open a TCP connection; the milliseconds it took."""
    return call(_p.tcp_connect, target, None if timeout is None else to_nanos(timeout)) / 1e6


def tcp_exchange(target: str, send: bytes, expect: bytes, timeout: Union[str, float, None] = None) -> float:
    """Send `send`, wait for `expect` in the answer (b"PING\\r\\n" and
    b"+PONG" for a key-value store); the milliseconds it took."""
    return call(_p.tcp_exchange, target, bytes(send), bytes(expect), None if timeout is None else to_nanos(timeout)) / 1e6


def process_alive(target: str) -> bool:
    return call(_p.process_alive, target)


class Check:
    """A health probe the drill chooses, not the scenario's code, so one
    scenario works on any service: `probe = "http"` (GET `path`), `"tcp"`
    (connect) or `"exchange"` (`send`, then `expect` in the answer: a
    key-value store's PING and +PONG). `Check.declare(metadata)` adds those
    parameters; `Check.from_params()` reads them."""

    def __init__(self, kind: str, path: str = "/health", send: bytes = b"", expect: bytes = b"", timeout: str = "2s") -> None:
        if kind not in ("http", "tcp", "exchange"):
            from ._core import Error

            raise Error("invalid-argument", f"parameter `probe` is {kind!r}; expected http, tcp or exchange")
        self.kind, self.path, self.send, self.expect, self.timeout = kind, path, send, expect, timeout

    @staticmethod
    def declare(metadata):
        return (
            metadata.param("probe", "string", "http", "How to tell the service is healthy: http, tcp or exchange")
            .param("path", "string", "/health", "probe = http: the path to GET")
            .param("send", "string", "", "probe = exchange: what to send")
            .param("expect", "string", "", "probe = exchange: what the answer must contain")
            .param("probe_timeout", "duration", "2s", "How long one probe may take")
        )

    @staticmethod
    def from_params() -> "Check":
        from . import host

        return Check(
            host.param("probe", "http"),
            host.param("path", "/health"),
            host.param("send", "").encode(),
            host.param("expect", "").encode(),
            host.param("probe_timeout", "2s"),
        )

    def run(self, target: str):
        """(True, latency_ms) when healthy, (False, why) when not; raises
        `Error` only for what ends the scenario (halted, denied…)."""
        from ._core import Error

        try:
            if self.kind == "http":
                r = http(target, "GET", self.path, timeout=self.timeout)
                return (True, r.latency_ms) if r.status < 400 else (False, f"status {r.status}")
            if self.kind == "tcp":
                return True, tcp_connect(target, self.timeout)
            return True, tcp_exchange(target, self.send, self.expect, self.timeout)
        except Error as e:
            if e.kind == "failed":
                return False, e.message
            raise

    def watch(self, target: str, duration, interval) -> dict:
        """Probe every `interval` for `duration`: samples, failures,
        failure_percent, max_latency_ms, first_failure."""
        from . import host
        from ._core import to_nanos

        end = host.now_ms() + to_nanos(duration) / 1e6
        w = {"samples": 0, "failures": 0, "max_latency_ms": 0.0, "first_failure": None}
        while host.now_ms() < end:
            w["samples"] += 1
            ok, detail = self.run(target)
            if ok:
                w["max_latency_ms"] = max(w["max_latency_ms"], detail)
            else:
                w["failures"] += 1
                if w["first_failure"] is None:
                    w["first_failure"] = detail
                    host.event("unhealthy", detail)
            host.sleep(interval)
        w["failure_percent"] = w["failures"] * 100.0 / max(w["samples"], 1)
        return w

    def until_healthy(self, target: str, within) -> Optional[float]:
        """Milliseconds until `target` is healthy, or None past `within`."""
        from . import host
        from ._core import to_nanos

        start = host.now_ms()
        limit = to_nanos(within) / 1e6
        while True:
            ok, _ = self.run(target)
            if ok:
                return host.now_ms() - start
            if host.now_ms() - start >= limit:
                return None
            host.sleep(0.1)
