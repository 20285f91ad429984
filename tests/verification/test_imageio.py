"""Untrusted image bytes: clear errors of the engine's own type, bounded memory."""

from __future__ import annotations

import io
import resource
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from tests import imagegen
from verification.exceptions import ImageTooLarge, NotAnImage, VerificationError
from verification.imageio import decode_image, ensure_image

LIMITS = {"max_pixels": 12_000_000, "max_side": 8192}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_jpeg_and_png_decode_to_rgb() -> None:
    image = imagegen.grace_hopper()
    from_png = decode_image(imagegen.png_bytes(image), **LIMITS)
    assert from_png.shape == image.shape and from_png.dtype == np.uint8
    assert np.array_equal(from_png, image)
    from_jpeg = decode_image(imagegen.jpeg_bytes(image), **LIMITS)
    assert from_jpeg.shape == image.shape
    assert np.abs(from_jpeg.astype(int) - image.astype(int)).mean() < 4


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is text",
        b"%PDF-1.4\n1 0 obj<<>>endobj",
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,  # a JPEG start and nothing more
    ],
    ids=["empty", "text", "pdf", "jpeg-magic-only"],
)
def test_non_images_raise_not_an_image(data: bytes) -> None:
    with pytest.raises(NotAnImage) as exc:
        decode_image(data, **LIMITS)
    assert exc.value.reason == "not_an_image"
    assert isinstance(exc.value, VerificationError)


def test_truncated_jpeg_raises_not_an_image() -> None:
    data = imagegen.jpeg_bytes(imagegen.grace_hopper())
    with pytest.raises(NotAnImage, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], **LIMITS)


def test_corrupt_png_raises_not_an_image() -> None:
    data = bytearray(imagegen.png_bytes(imagegen.astronaut()))
    data[200:400] = b"\x00" * 200
    with pytest.raises(NotAnImage):
        decode_image(bytes(data), **LIMITS)


def test_gif_is_refused_as_unsupported_format() -> None:
    buf = io.BytesIO()
    PILImage.fromarray(imagegen.astronaut()).save(buf, format="GIF")
    with pytest.raises(NotAnImage, match="GIF is not accepted"):
        decode_image(buf.getvalue(), **LIMITS)


def test_huge_declared_dimensions_are_refused_before_decoding() -> None:
    bomb = _png_header_only(20_000, 20_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageTooLarge) as exc:
        decode_image(bomb, **LIMITS)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert exc.value.reason == "image_too_large"
    assert "too large" in str(exc.value)
    # ru_maxrss is in KiB: decoding would have needed 1.2 GB.
    assert after - before < 50 * 1024


def test_pixel_limit_and_side_limit_are_separate() -> None:
    wide = imagegen.png_bytes(np.zeros((10, 9000, 3), np.uint8))
    with pytest.raises(ImageTooLarge, match="longest side"):
        decode_image(wide, **LIMITS)
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(imagegen.png_bytes(imagegen.astronaut()), max_pixels=100_000, max_side=8192)


def test_exif_rotated_photo_is_upright() -> None:
    image = imagegen.grace_hopper()  # portrait: 600 high, 512 wide
    rotated = np.ascontiguousarray(np.rot90(image, k=1))  # stored sideways
    pil = PILImage.fromarray(rotated)
    exif = pil.getexif()
    exif[0x0112] = 8  # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", exif=exif.tobytes())
    decoded = decode_image(buf.getvalue(), **LIMITS)
    assert decoded.shape[:2] == image.shape[:2]


def test_cmyk_and_16_bit_and_grey_and_alpha_become_rgb() -> None:
    image = imagegen.grace_hopper()
    buf = io.BytesIO()
    PILImage.fromarray(image).convert("CMYK").save(buf, format="JPEG")
    assert decode_image(buf.getvalue(), **LIMITS).shape == image.shape
    grey16 = (image[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    buf = io.BytesIO()
    PILImage.fromarray(grey16).save(buf, format="PNG")
    decoded = decode_image(buf.getvalue(), **LIMITS)
    assert decoded.shape == image.shape
    # The top 8 bits are kept, not clipped to white.
    assert abs(int(decoded[..., 0].mean()) - int(image[..., 0].mean())) <= 1
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    assert decode_image(imagegen.png_bytes(rgba), **LIMITS).shape == image.shape
    grey = imagegen.png_bytes(image[..., 1])
    assert decode_image(grey, **LIMITS).shape == image.shape


def test_zero_size_in_memory_frame_is_refused() -> None:
    with pytest.raises(NotAnImage, match="no pixels"):
        ensure_image(np.zeros((0, 10, 3), np.uint8), **LIMITS)
    with pytest.raises(NotAnImage, match="uint8"):
        ensure_image(np.zeros((10, 10, 3), np.float32), **LIMITS)
    with pytest.raises(NotAnImage, match="numpy array"):
        ensure_image("not an array", **LIMITS)
    assert ensure_image(np.zeros((10, 12), np.uint8), **LIMITS).shape == (10, 12, 3)


def test_errors_survive_pickling_across_the_process_pool() -> None:
    import pickle

    from verification.exceptions import EnrolmentRejected

    for err in (
        NotAnImage("nope"),
        ImageTooLarge("big"),
        EnrolmentRejected("low_quality", ("too_dark",), "dark"),
    ):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert getattr(back, "reason", None) == getattr(err, "reason", None)
        assert getattr(back, "issues", None) == getattr(err, "issues", None)
