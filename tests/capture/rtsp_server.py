"""A tiny RTSP camera for tests: a thread on 127.0.0.1 that answers OPTIONS, DESCRIBE,
SETUP, PLAY, GET_PARAMETER and TEARDOWN and serves Motion JPEG (RTP payload 26)
over TCP interleaved only, packetised by FFmpeg's own RTP muxer from frames the test
generates. It can also answer every request with a redirect, or with an SDP whose
control URL names another host, as a hostile camera would."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Sequence

import av
import numpy as np

from tests.classgen import free_port


class _Packets:
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.packets.append(bytes(data))
        return len(data)


def rtp_mjpeg(images: Sequence[np.ndarray], fps: int) -> list[tuple[float, bytes]]:
    """(send time in s, RTP packet) of the images as JPEG over RTP (RFC 2435)."""
    out: list[tuple[float, bytes]] = []
    sink = _Packets()
    container = av.open(
        sink, "w", format="rtp", container_options={"packetsize": "1400"}, buffer_size=1500
    )
    stream = container.add_stream("mjpeg", rate=fps)
    height, width = images[0].shape[:2]
    stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
        frame.pts = i
        for packet in stream.encode(frame):
            before = len(sink.packets)
            container.mux(packet)
            out += [(i / fps, p) for p in sink.packets[before:]]
    for packet in stream.encode():
        before = len(sink.packets)
        container.mux(packet)
        out += [(len(images) / fps, p) for p in sink.packets[before:]]
    container.close()
    return out


SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 26\r\na=control:{control}\r\n"
)


class RtspCamera:
    """An RTSP camera on 127.0.0.1 (or `host`): `url`, what it was asked (`requests`),
    how many connections it took (`connections`)."""

    def __init__(
        self,
        packets: list[tuple[float, bytes]] | None = None,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: serve RTSPS with this server context."""
        self.packets = packets or []
        self.host = host
        self.tls = tls
        self.port = free_port()
        self.redirect_to: str | None = None  # answer every request with a 302 here
        self.control: str = "trackID=0"  # the SDP's control URL
        self.requests: list[str] = []
        self.connections = 0
        self._sock: socket.socket | None = None
        self._closed = threading.Event()
        self._send_lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "rtsps" if self.tls is not None else "rtsp"
        return f"{scheme}://{self.host}:{self.port}/live"

    def __enter__(self) -> RtspCamera:
        self._sock = socket.create_server((self.host, self.port))
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        if self._sock is not None:
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        reader = conn.makefile("rb")
        playing = threading.Event()
        self._send_lock = threading.Lock()
        try:
            while not self._closed.is_set():
                first = reader.read(1)
                if not first:
                    return
                if first == b"$":  # an interleaved frame from the client (RTCP)
                    header = reader.read(3)
                    reader.read(int.from_bytes(header[1:3], "big"))
                    continue
                line = (first + reader.readline()).decode("latin-1").strip()
                headers: dict[str, str] = {}
                while True:
                    h = reader.readline().decode("latin-1").strip()
                    if not h:
                        break
                    name, _, value = h.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0")):
                    reader.read(int(headers["content-length"]))
                method, uri, _ = line.split(" ", 2)
                self.requests.append(method)
                cseq = headers.get("cseq", "0")
                if self.redirect_to is not None:
                    self._reply(
                        conn, cseq, "302 Moved Temporarily", f"Location: {self.redirect_to}"
                    )
                    continue
                if method == "OPTIONS":
                    self._reply(
                        conn, cseq, "200 OK", "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
                    )
                elif method == "DESCRIBE":
                    body = SDP.format(control=self.control)
                    self._reply(
                        conn,
                        cseq,
                        "200 OK",
                        f"Content-Base: {uri}/\r\nContent-Type: application/sdp",
                        body,
                    )
                elif method == "SETUP":
                    if "interleaved" not in headers.get("transport", ""):
                        self._reply(conn, cseq, "461 Unsupported Transport")
                        continue
                    self._reply(
                        conn,
                        cseq,
                        "200 OK",
                        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4242",
                    )
                elif method == "PLAY":
                    self._reply(conn, cseq, "200 OK", "Session: 4242")
                    if not playing.is_set():
                        playing.set()
                        if self.tls is not None:
                            # One thread per TLS connection: play here, read no more.
                            self._play(conn)
                            return
                        threading.Thread(target=self._play, args=(conn,), daemon=True).start()
                elif method == "TEARDOWN":
                    self._reply(conn, cseq, "200 OK", "Session: 4242")
                    return
                else:
                    self._reply(conn, cseq, "200 OK", "Session: 4242")
        except (OSError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _reply(
        self, conn: socket.socket, cseq: str, status: str, extra: str = "", body: str = ""
    ) -> None:
        head = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n"
        if extra:
            head += extra + "\r\n"
        head += f"Content-Length: {len(body.encode())}\r\n\r\n"
        with self._send_lock:
            conn.sendall(head.encode() + body.encode())

    def _play(self, conn: socket.socket) -> None:
        start = time.monotonic()
        try:
            for at, packet in self.packets:
                if self._closed.is_set():
                    return
                wait = start + at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                channel = 1 if 200 <= packet[1] <= 204 else 0  # RTCP on the odd channel
                frame = b"$" + bytes([channel]) + len(packet).to_bytes(2, "big") + packet
                with self._send_lock:
                    conn.sendall(frame)
        except OSError:
            return
