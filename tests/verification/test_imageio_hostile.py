"""The decoder under mutation fuzzing, and every EXIF orientation applied exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from tests import imagegen
from verification.exceptions import ImageError
from verification.imageio import decode_image

LIMITS = {"max_pixels": 12_000_000, "max_side": 8192}
SMALL = np.ascontiguousarray(imagegen.grace_hopper()[::4, ::4])


def _save(image: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, format=fmt, **kw)
    return buf.getvalue()


SEEDS = {
    "jpeg": _save(SMALL, "JPEG", quality=90),
    "png": _save(SMALL, "PNG"),
    "webp": _save(SMALL, "WEBP"),
    "bmp": _save(SMALL, "BMP"),
}

# What each EXIF orientation asks a viewer to do, as the inverse of how the pixels
# were stored: stored = STORE[o](upright); decode must give `upright` back.
STORE = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: np.transpose(a, (1, 0, 2)),
    6: lambda a: np.rot90(a, k=1),
    7: lambda a: np.transpose(a[::-1, ::-1], (1, 0, 2)),
    8: lambda a: np.rot90(a, k=-1),
}


@pytest.mark.parametrize("orientation", sorted(STORE))
def test_every_exif_orientation_gives_the_upright_pixels(orientation: int) -> None:
    upright = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170)
    stored = PILImage.fromarray(np.ascontiguousarray(STORE[orientation](upright)))
    exif = stored.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="PNG", exif=exif.tobytes())
    decoded = decode_image(buf.getvalue(), **LIMITS)
    assert decoded.shape == upright.shape
    assert np.array_equal(decoded, upright)


def test_a_phone_photo_in_mpo_form_decodes() -> None:
    data = _save(SMALL, "MPO", save_all=True, append_images=[PILImage.fromarray(SMALL)])
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.format == "MPO"
    assert decode_image(data, **LIMITS).shape == SMALL.shape


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=16),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_images_decode_or_raise_an_image_error(
    seed: str, flips: list[tuple[float, int]], cut: float | None
) -> None:
    """Budget: 400 mutated files (byte flips, truncation) of four formats, fixed seed.
    Nothing but `ImageError` may escape, and no warning (the suite turns them into
    errors)."""
    data = bytearray(SEEDS[seed])
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    try:
        image = decode_image(bytes(data), **LIMITS)
    except ImageError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
