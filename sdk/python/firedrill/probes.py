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
