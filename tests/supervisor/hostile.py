"""Hostile and unusual image uploads, built from the real face photos.

`REFUSED` must be answered 413 (too large) or 415 (not a usable image) on every
upload path, before any pixel is decoded where the header already says no.
`ACCEPTED` are awkward but honest encodings of a real face that must work.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image as PILImage

from tests import imagegen


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose header declares width x height (8-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = idat if idat is not None else zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )


def bomb_png() -> bytes:
    """A real decompression bomb: 30000 x 30000 black pixels (2.7 GB as RGB) in a
    file of a few hundred kilobytes."""
    row = b"\x00" + b"\x00" * (30000 * 3)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(200)]  # enough for the header to parse
    parts.append(compressor.flush())
    return png_declaring(30000, 30000, b"".join(parts))


def corrupt_png(image: np.ndarray) -> bytes:
    """A PNG of the photo whose compressed pixel data is overwritten with noise."""
    data = bytearray(imagegen.png_bytes(image))
    start = data.index(b"IDAT") + 4 + 64
    rng = np.random.default_rng(7)
    data[start : start + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return bytes(data)


def _save(image: PILImage.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def exif_rotated_jpeg(image: np.ndarray) -> bytes:
    """The photo stored turned 90 degrees counter-clockwise with EXIF Orientation 6
    ("rotate 90 degrees clockwise to display"), as a phone held sideways writes it."""
    stored = PILImage.fromarray(np.ascontiguousarray(np.rot90(image, k=1)))
    exif = stored.getexif()
    exif[0x0112] = 6
    return _save(stored, "JPEG", quality=92, exif=exif.tobytes())


def refused(photo: np.ndarray) -> dict[str, tuple[bytes, int]]:
    """name -> (bytes, expected status)."""
    jpeg = imagegen.jpeg_bytes(photo)
    html = b"<!doctype html><html><script>alert(document.cookie)</script></html>"
    return {
        "empty": (b"", 415),
        "truncated_jpeg": (jpeg[: len(jpeg) // 3], 415),
        "corrupt_png": (corrupt_png(photo), 415),
        "html_then_jpeg": (html + jpeg, 415),
        "zip": (b"PK\x03\x04" + b"\x00" * 200, 415),
        "gif": (_save(PILImage.fromarray(photo), "GIF"), 415),
        "zero_width_png": (png_declaring(0, 480), 415),
        "bomb_png": (bomb_png(), 413),
        "absurd_side_png": (png_declaring(9000, 1), 413),
        "absurd_area_png": (png_declaring(8000, 8000), 413),
    }


def accepted(photo: np.ndarray) -> dict[str, bytes]:
    """Honest but awkward encodings of a face photo."""
    pil = PILImage.fromarray(photo)
    grey16 = (photo[..., 1].astype(np.uint16) * 257).astype(np.uint16)
    html = b"<!doctype html><html><script>alert(document.cookie)</script></html>"
    return {
        "cmyk_jpeg": _save(pil.convert("CMYK"), "JPEG", quality=92),
        "png_16bit_grey": _save(PILImage.fromarray(grey16), "PNG"),
        "palette_png": _save(pil.convert("P", palette=PILImage.Palette.ADAPTIVE), "PNG"),
        "mpo_phone_photo": _save(pil, "MPO", save_all=True, append_images=[pil]),
        "exif_rotated_jpeg": exif_rotated_jpeg(photo),
        # A polyglot: a valid JPEG with an HTML page and a zip appended. It is a photo;
        # what is stored as evidence is a re-encoding, so the payload never is.
        "jpeg_with_html_and_zip": imagegen.jpeg_bytes(photo) + html + b"PK\x05\x06" + b"\0" * 18,
    }
