"""A relay between FFmpeg's RTSP client and one checked camera address, which cuts the
connection when the camera tries to send FFmpeg anywhere else.

FFmpeg's RTSP client follows a server's 3xx reply (`Location:`) by itself, to any
host (libavformat/rtsp.c, `goto redirect`), and has no option to refuse it. So under
a network policy FFmpeg never talks to the camera directly: it talks to a relay on
127.0.0.1 (an ephemeral port, one connection, the first one accepted, then the
listener closes), and the relay talks to the address `capture.netguard` checked.
Bytes from FFmpeg go to the camera unchanged. Bytes from the camera are parsed
(RTSP messages: a start line, headers up to a blank line, a `Content-Length` body;
interleaved binary frames: `$`, channel, 2-byte length, payload) and forwarded only
when they are one of:
- a response whose status is not 3xx;
- a request the server may send a client (GET_PARAMETER, SET_PARAMETER, OPTIONS);
- an interleaved frame.
Anything else (a redirect, a line or body that does not parse, a header block or
body over its bound) closes both sides: FFmpeg fails, and the camera reads as the
generic network failure; the reason goes to the log.

Only TCP interleaved transport is used through the relay (the caller forces
`rtsp_transport=tcp`; FFmpeg then refuses a SETUP reply with another transport),
so media arrive on this one connection and FFmpeg opens no other: no UDP ports
named by the camera, no multicast group from the SDP (`c=` is not used for TCP).
URLs the camera names for later requests (SDP `a=control`, `Content-Base`,
`Content-Location`) are requests on this same connection in FFmpeg, never new
connections; still, an absolute one that names another host than the camera (its
name or a checked address) or the relay is refused, so that a future client that
did follow them could not be sent elsewhere. A `Transport` reply that is not
interleaved is refused too.

RTSPS: the relay makes the TLS connection to the camera (SNI: the camera's name;
the certificate is not verified, as FFmpeg does not verify by default: cameras
carry self-signed certificates) and FFmpeg speaks plain RTSP to the relay.

One thread per relay, blocking sockets with timeouts and `select`, buffers bounded
(`MAX_HEAD`, `MAX_BODY`, `CHUNK`); `close()` may be called from any thread and ends
the thread at once. The 127.0.0.1 listener is for FFmpeg only: it is no camera
target, and the guard's loopback rule is unchanged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import select
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from capture.types import CheckedTarget

log = logging.getLogger(__name__)

# Bounds on what the relay holds from the camera at any time.
MAX_HEAD: Final = 16 * 1024  # start line and headers of one message
MAX_BODY: Final = 64 * 1024  # body of one message (an SDP is a few hundred bytes)
CHUNK: Final = 64 * 1024  # one read from either side
# Requests an RTSP server may send its client while playing (keep-alives, parameters).
SERVER_REQUESTS: Final = frozenset({"GET_PARAMETER", "SET_PARAMETER", "OPTIONS"})
_STATUS: Final = re.compile(rb"^RTSP/\d\.\d (\d{3})(?: .*)?$")
_REQUEST: Final = re.compile(rb"^([A-Z_]{1,32}) (\S+) RTSP/\d\.\d$")
_URL_HEADERS: Final = (b"content-base", b"content-location")


class Refused(Exception):
    """The camera sent something the relay does not pass on."""


class RtspRelay:
    """One FFmpeg connection relayed to one checked camera address."""

    def __init__(self, target: CheckedTarget, timeout: float, name: str = "") -> None:
        """`timeout`: for connecting and for each read or write."""
        self._target = target
        self._timeout = timeout
        self._name = name or f"{target.addresses[0]}:{target.port}"
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self.refused: str | None = None  # why the relay cut the connection, if it did
        address = target.addresses[0]
        self._allowed_hosts = {
            target.host.strip("[]").lower(),
            *(str(a) for a in target.addresses),
            "127.0.0.1",
        }
        self._address = address

    def open(self) -> str:
        """Connect to the camera (blocking, within the timeout), listen for FFmpeg, and
        return the URL FFmpeg is to open (the camera's URL through the relay)."""
        upstream = socket.create_connection(
            (str(self._address), self._target.port), timeout=self._timeout
        )
        self._keep(upstream)
        if self._target.scheme == "rtsps":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            server_name = None if _is_address(self._target.host) else self._target.host
            upstream = context.wrap_socket(upstream, server_hostname=server_name)
            self._keep(upstream)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._keep(listener)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(self._timeout)
        port = listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, args=(listener, upstream), name=f"rtsp-relay-{port}", daemon=True
        )
        self._thread.start()
        parts = urlsplit(self._target.url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (f"{userinfo}@" if userinfo else "") + f"127.0.0.1:{port}"
        return urlunsplit(("rtsp", netloc, parts.path, parts.query, ""))

    def close(self) -> None:
        """Close both sides and the listener (idempotent, from any thread)."""
        self._closed.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- relay thread ----------------------------------------------------------

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            if self._closed.is_set():
                sock.close()
                raise OSError("the relay is closed")
            self._sockets.append(sock)

    def _run(self, listener: socket.socket, upstream: socket.socket) -> None:
        try:
            try:
                client = self._accept(listener)
            finally:
                listener.close()  # one connection only
            self._keep(client)
            client.settimeout(self._timeout)
            upstream.settimeout(self._timeout)
            self._pump(client, upstream)
        except Refused as exc:
            self.refused = str(exc)
            log.warning("rtsp relay to %s cut: %s", self._name, exc)
        except (OSError, ValueError) as exc:
            if not self._closed.is_set():
                log.info("rtsp relay to %s ended: %s", self._name, type(exc).__name__)
        finally:
            self.close()

    def _accept(self, listener: socket.socket) -> socket.socket:
        """The first connection from this process (FFmpeg's); another local process
        that connects first is turned away (checked through /proc where there is one)."""
        while True:
            client, peer = listener.accept()
            if _from_this_process(peer, listener.getsockname()):
                return client
            log.warning("rtsp relay to %s: a connection from another process refused", self._name)
            client.close()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        parser = _ServerStream(self._check_url)
        while not self._closed.is_set():
            pending = isinstance(upstream, ssl.SSLSocket) and upstream.pending() > 0
            if pending:
                readable: list[socket.socket] = [upstream]
            else:
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
            if client in readable:
                data = client.recv(CHUNK)
                if not data:
                    return
                upstream.sendall(data)
            if upstream in readable:
                data = upstream.recv(CHUNK)
                if not data:
                    return
                out = parser.feed(data)
                if out:
                    client.sendall(out)

    def _check_url(self, url: str) -> None:
        """An absolute URL the camera names for later requests must name the camera."""
        if "://" not in url:
            return  # relative, or "*"
        try:
            host = urlsplit(url).hostname
        except ValueError:
            raise Refused("a URL that does not parse") from None
        if not host or host.lower() not in self._allowed_hosts:
            raise Refused("a URL naming another host than the camera")


def _from_this_process(peer: tuple[str, int], local: tuple[str, int]) -> bool:
    """Whether the loopback connection from `peer` to `local` was made by a socket of
    this process: its inode in /proc/net/tcp is among this process's descriptors.
    True where /proc cannot tell (not Linux)."""
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            rows = table.read().splitlines()[1:]
        ours = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/self/fd/{fd}")
                if link.startswith("socket:["):
                    ours.add(link[8:-1])
    except OSError:
        return True
    want = (_hex_endpoint(peer), _hex_endpoint(local))
    for row in rows:
        fields = row.split()
        if len(fields) > 9 and (fields[1], fields[2]) == want:
            return fields[9] in ours
    return False


def _hex_endpoint(endpoint: tuple[str, int]) -> str:
    """An IPv4 endpoint as /proc/net/tcp writes it (address in host byte order)."""
    packed = socket.inet_aton(endpoint[0])
    return f"{int.from_bytes(packed, sys.byteorder):08X}:{endpoint[1]:04X}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _ServerStream:
    """Parses what the camera sends and returns what may be forwarded to FFmpeg."""

    def __init__(self, check_url: Callable[[str], None]) -> None:
        self._check_url = check_url
        self._buf = bytearray()
        self._frame_left = 0  # bytes of an interleaved frame still to forward as they come

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while self._buf:
            if self._frame_left:
                take = min(self._frame_left, len(self._buf))
                out += self._buf[:take]
                del self._buf[:take]
                self._frame_left -= take
                continue
            if self._buf[0] == 0x24:  # "$": an interleaved frame
                if len(self._buf) < 4:
                    break
                out += self._buf[:4]
                self._frame_left = int.from_bytes(self._buf[2:4], "big")
                del self._buf[:4]
                continue
            message = self._message()
            if message is None:
                break
            out += message
        if len(self._buf) > MAX_HEAD + MAX_BODY:
            raise Refused("a message over the relay's bounds")
        return bytes(out)

    def _message(self) -> bytes | None:
        """One whole RTSP message from the buffer once checked; None until complete."""
        end = self._buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end = self._buf.find(b"\n\n")
            sep = 2
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise Refused("a header block over the relay's bound")
            return None
        if end > MAX_HEAD:
            raise Refused("a header block over the relay's bound")
        lines = bytes(self._buf[:end]).replace(b"\r\n", b"\n").split(b"\n")
        length = self._check_head(lines)
        if length > MAX_BODY:
            raise Refused("a body over the relay's bound")
        total = end + sep + length
        if len(self._buf) < total:
            return None
        body = bytes(self._buf[end + sep : total])
        self._check_body(body)
        message = bytes(self._buf[:total])
        del self._buf[:total]
        return message

    def _check_head(self, lines: list[bytes]) -> int:
        start = lines[0].strip()
        status = _STATUS.match(start)
        if status is not None:
            code = int(status.group(1))
            if 300 <= code < 400:
                raise Refused(f"an RTSP redirect ({code})")
            if not 100 <= code < 600:
                raise Refused(f"an RTSP status that is none ({code})")
        else:
            request = _REQUEST.match(start)
            if request is None:
                raise Refused("a start line that is not RTSP")
            if request.group(1).decode() not in SERVER_REQUESTS:
                raise Refused(f"a request {request.group(1).decode()!r} from the server")
        length = 0
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise Refused("a header line that does not parse")
            key = name.strip().lower()
            text = value.strip().decode("latin-1")
            if key == b"content-length":
                if not text.isdigit():
                    raise Refused("a Content-Length that does not parse")
                length = int(text)
            elif key in _URL_HEADERS:
                self._check_url(text)
            elif key == b"transport":
                lowered = text.lower()
                if "interleaved=" not in lowered or "multicast" in lowered:
                    raise Refused("a transport other than TCP interleaved")
        return length

    def _check_body(self, body: bytes) -> None:
        for line in body.replace(b"\r\n", b"\n").split(b"\n"):
            if line.startswith(b"a=control:"):
                self._check_url(line[len(b"a=control:") :].strip().decode("latin-1"))
