"""The client of vaurien's control API (``--http``): the original ``vaurienclient.Client``, on
the standard library only (1.x needed ``requests``)."""
from __future__ import annotations

import contextlib
import http.client
import json
from typing import Any, Iterator, List, Tuple

__all__ = ["Client", "HTTPError"]


class HTTPError(IOError):
    """The control API answered with an error status (``requests.HTTPError`` in the original)."""

    def __init__(self, status: int, body: Any, url: str) -> None:
        super().__init__(f"{status} error for {url}: {body}")
        self.status = status
        self.body = body
        self.url = url


class Client:
    """Drives a vaurien proxy through its HTTP control API.

    >>> client = Client(host='localhost', port=8080)
    >>> with client.with_behavior('delay', sleep=0.5):
    ...     pass  # every new exchange is delayed here
    """

    def __init__(self, host: str = "localhost", port: int = 8080, scheme: str = "http", timeout: float = 30.0) -> None:
        self.host = host
        self.port = int(port)
        self.scheme = scheme
        self.timeout = timeout
        self.root_url = "%s://%s:%s" % (scheme, host, port)
        self.behavior_url = self.root_url + "/behavior"
        self.list_behaviors_url = self.root_url + "/behaviors"
        self.backend_url = self.root_url + "/backend"

    def _request(self, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        try:
            headers = {"Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                payload = json.loads(raw.decode() or "null")
            except ValueError:
                payload = raw.decode(errors="replace")
            return resp.status, payload
        finally:
            conn.close()

    def _check(self, status: int, payload: Any, path: str) -> Any:
        if status >= 400:
            raise HTTPError(status, payload, self.root_url + path)
        return payload

    def set_behavior(self, behavior: str, **options: Any) -> None:
        """Sets the behavior (a name, or a mix such as ``"20:delay,10:error"``) and its options.

        Raises ``ValueError`` with the server's description for an unknown behavior or a bad
        option."""
        body = dict(options)
        body["name"] = behavior
        status, payload = self._request("PUT", "/behavior", body)
        if status == 400 and isinstance(payload, dict):
            errors = payload.get("errors") or []
            if payload.get("status", "error") == "error" and errors:
                raise ValueError(errors[0].get("description", "invalid behavior"))
        self._check(status, payload, "/behavior")

    def get_behavior(self) -> str:
        """The active behavior, as it was set (a name or a mix)."""
        status, payload = self._request("GET", "/behavior")
        return self._check(status, payload, "/behavior")["behavior"]

    def list_behaviors(self) -> List[str]:
        """The names of every behavior the proxy knows (built-ins and plugins)."""
        status, payload = self._request("GET", "/behaviors")
        return self._check(status, payload, "/behaviors")["behaviors"]

    def get_backend(self) -> str:
        """Where the proxy forwards, ``host:port``."""
        status, payload = self._request("GET", "/backend")
        return self._check(status, payload, "/backend")["backend"]

    def set_backend(self, backend: str) -> None:
        """Points new connections at ``backend`` (``host:port``)."""
        status, payload = self._request("PUT", "/backend", {"backend": backend})
        if status == 400 and isinstance(payload, dict) and payload.get("errors"):
            raise ValueError(payload["errors"][0].get("description", "invalid backend"))
        self._check(status, payload, "/backend")

    @contextlib.contextmanager
    def with_behavior(self, behavior: str, **options: Any) -> Iterator[None]:
        """Sets ``behavior`` for the block, then restores the previous one (also when the
        block raises)."""
        current = self.get_behavior()
        self.set_behavior(behavior, **options)
        try:
            yield
        finally:
            self.set_behavior(current)

    def __repr__(self) -> str:
        return f"<vaurienclient.Client {self.root_url}>"
