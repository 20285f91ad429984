"""Safe decoding of untrusted image bytes into RGB arrays.

The size is read from the header and refused before any pixel is decoded, so a
small file that claims 20000x20000 pixels (a decompression bomb) costs nothing.
EXIF orientation is applied, so a phone photo taken sideways is upright.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from verification.exceptions import ImageTooLarge, NotAnImage
from verification.types import Image

# MPO is how Pillow names a JPEG carrying a second picture (many phone cameras
# write one); its first frame is the ordinary photo.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP"})


def decode_image(data: bytes, *, max_pixels: int, max_side: int) -> Image:
    """Decode JPEG/PNG/WebP/BMP bytes into an upright RGB uint8 array.

    Raises `NotAnImage` for empty, truncated, corrupt or unsupported data and
    `ImageTooLarge` when the header declares more than `max_pixels` pixels or a
    side longer than `max_side`.
    """
    if not data:
        raise NotAnImage("the upload is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns about damage it skips (a bad EXIF tag, a malformed MPO index):
            # the pixels that decode are what count, and a hostile upload must not be
            # able to fill the log.
            warnings.simplefilter("ignore", UserWarning)
            # Pillow's own bomb guard warns before it errors; both mean "too large".
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as im:
                fmt = im.format or "unknown"
                if fmt not in ACCEPTED_FORMATS:
                    raise NotAnImage(
                        f"image format {fmt} is not accepted "
                        f"(use {', '.join(sorted(ACCEPTED_FORMATS - {'MPO'}))})"
                    )
                width, height = im.size
                check_dimensions(width, height, max_pixels=max_pixels, max_side=max_side)
                im.load()
                return _to_rgb_array(ImageOps.exif_transpose(im))
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as exc:
        raise ImageTooLarge(f"image is too large to decode: {exc}") from None
    except UnidentifiedImageError:
        raise NotAnImage("the data is not a recognisable image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImage(f"the image is corrupt or truncated: {exc}") from None


def check_dimensions(width: int, height: int, *, max_pixels: int, max_side: int) -> None:
    """Refuse zero-size or oversized images by their declared dimensions."""
    if width <= 0 or height <= 0:
        raise NotAnImage(f"image has no pixels ({width}x{height})")
    if width > max_side or height > max_side:
        raise ImageTooLarge(f"image is {width}x{height}; the longest side allowed is {max_side}px")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels; at most {max_pixels} allowed"
        )


def _to_rgb_array(im: PILImage.Image) -> Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: keep the top 8 bits instead of Pillow's clipping to 255.
        wide = np.asarray(im, dtype=np.uint32)
        shift = 8 if wide.max(initial=0) > 255 else 0
        grey = (wide >> shift).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    if im.mode == "RGBA" or im.mode == "LA" or (im.mode == "P" and "transparency" in im.info):
        # Flatten transparency onto white, as a viewer would show it.
        rgba = im.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = PILImage.alpha_composite(background, rgba)
    rgb = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def ensure_image(image: object, *, max_pixels: int, max_side: int) -> Image:
    """Validate an in-memory frame: RGB uint8 (H, W, 3), or grey (H, W) made RGB."""
    if not isinstance(image, np.ndarray):
        raise NotAnImage(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise NotAnImage(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise NotAnImage(f"expected an (H, W, 3) array, got shape {image.shape}")
    check_dimensions(image.shape[1], image.shape[0], max_pixels=max_pixels, max_side=max_side)
    return np.ascontiguousarray(image)


def encode_jpeg(image: Image, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB array (evidence frames)."""
    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
