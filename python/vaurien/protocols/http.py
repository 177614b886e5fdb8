"""``http``: one request and its response per exchange (runs natively in the engine; this class
is its Python form, to subclass). The original used the ``http-parser`` package; this port has
a small parser of its own with the part of ``HttpParser``'s API it used."""
from __future__ import annotations

import copy
import re
from typing import Any, Callable, Optional

from vaurien.protocols.base import BaseProtocol

__all__ = ["Http", "HttpParser"]

HOST_REPLACE = re.compile(rb"\r\nHost: .+\r\n")
CRLF = b"\r\n"


class HttpParser:
    """An incremental HTTP/1.x message parser: ``execute(data, length)``,
    ``is_headers_complete()``, ``is_message_complete()``, ``should_keep_alive()``,
    ``get_method()``, ``get_status_code()``, ``get_headers()``."""

    def __init__(self, method: Optional[str] = None) -> None:
        self._buffer = b""
        self._request_method = method  # the request's, when this parses its response
        self._method: Optional[str] = None
        self._status: Optional[int] = None
        self._version = "HTTP/1.1"
        self._headers: dict = {}
        self._headers_done = False
        self._remaining: Optional[int] = None  # body bytes left (None: until close)
        self._chunked = False
        self._done = False

    def execute(self, data: bytes, length: int) -> int:
        self._buffer += data[:length]
        if not self._headers_done:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end == -1:
                return length
            self._parse_head(self._buffer[:head_end].decode("latin-1"))
            self._buffer = self._buffer[head_end + 4:]
        self._advance()
        return length

    def _parse_head(self, head: str) -> None:
        first, *lines = head.split("\r\n")
        parts = first.split(" ", 2)
        if first.startswith("HTTP/"):
            self._version, self._status = parts[0], int(parts[1])
        else:
            self._method, self._version = parts[0], parts[2] if len(parts) > 2 else "HTTP/1.0"
        for line in lines:
            name, _, value = line.partition(":")
            self._headers[name.strip().lower()] = value.strip()
        self._headers_done = True
        no_body = (
            self._request_method == "HEAD"
            or (self._status is not None and (self._status < 200 or self._status in (204, 304)))
        )
        if no_body:
            self._remaining = 0
        elif "chunked" in self._headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in self._headers:
            self._remaining = int(self._headers["content-length"])
        elif self._status is None:
            self._remaining = 0  # a request without a length has no body

    def _advance(self) -> None:
        if self._chunked:
            while not self._done:
                if self._remaining:  # inside a chunk: its data and CRLF
                    if len(self._buffer) < self._remaining:
                        return
                    self._buffer, self._remaining = self._buffer[self._remaining:], 0
                    continue
                eol = self._buffer.find(CRLF)
                if eol == -1:
                    return
                size = int(self._buffer[:eol].split(b";")[0] or b"0", 16)
                if size == 0:
                    end = self._buffer.find(b"\r\n\r\n", eol)
                    if end == -1:
                        return
                    self._done = True
                    return
                self._buffer, self._remaining = self._buffer[eol + 2:], size + 2
        elif self._remaining is not None:
            taken = min(self._remaining, len(self._buffer))
            self._buffer, self._remaining = self._buffer[taken:], self._remaining - taken
            self._done = self._remaining == 0

    def is_headers_complete(self) -> bool:
        return self._headers_done

    def is_message_complete(self) -> bool:
        return self._done

    def get_method(self) -> Optional[str]:
        return self._method

    def get_status_code(self) -> Optional[int]:
        return self._status

    def get_headers(self) -> dict:
        return dict(self._headers)

    def should_keep_alive(self) -> bool:
        connection = self._headers.get("connection", "").lower()
        if self._version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class Http(BaseProtocol):
    """HTTP protocol."""

    name = "http"
    options = copy.copy(BaseProtocol.options)
    options["overwrite_host_header"] = (
        "If True, the HTTP Host header will be rewritten with backend address.",
        bool,
        False,
    )

    def _close_both(self, source: Any, dest: Any) -> bool:
        source.close()
        source._closed = True
        dest.close()
        dest._closed = True
        return False

    def _backend(self, dest: Any) -> str:
        if self.proxy is not None:
            return self.proxy.backend
        host, port = dest.getpeername()[:2]
        return "%s:%d" % (host, port)

    def _handle(self, source: Any, dest: Any, to_backend: bool, on_between_handle: Callable[[], bool]) -> bool:
        buffer_size = self.option("buffer")

        # Getting the HTTP query and sending it to the backend.
        parser = HttpParser()
        while not parser.is_message_complete():
            data = self._get_data(source, buffer_size)
            if not data:
                return self._close_both(source, dest)
            parser.execute(data, len(data))
            if self.option("overwrite_host_header"):
                host = b"\r\nHost: " + self._backend(dest).encode() + b"\r\n"
                data = HOST_REPLACE.sub(lambda _: host, data)
            dest.sendall(data)
        keep_alive_src = parser.should_keep_alive()
        method = parser.get_method()
        if not on_between_handle():
            return self._close_both(source, dest)

        # Getting the HTTP response and sending it back to the source.
        parser = HttpParser(method)
        while not parser.is_message_complete():
            data = self._get_data(dest, buffer_size)
            if not data:
                return self._close_both(source, dest)
            parser.execute(data, len(data))
            source.sendall(data)
        keep_alive_dst = parser.should_keep_alive()

        # do we close the client ?
        if not keep_alive_src or not self.option("keep_alive"):
            source.close()
            source._closed = True

        if not keep_alive_dst or not self.option("reuse_socket") or not self.option("keep_alive"):
            dest.close()
            dest._closed = True

        return keep_alive_dst and self.option("keep_alive")
