"""Head pose and eye opening from dlib's 68 face landmarks. Pure functions.

Landmark indices follow dlib's 68-point (iBUG 300-W) scheme as the image shows
the face: 36-41 is the eye on the image's left (the learner's right eye on an
unmirrored camera), 42-47 the eye on the image's right, 30 the nose tip, 8 the
chin, 48 and 54 the mouth corners on the image's left and right.

Sign conventions (all in the image as the server receives it):

- `yaw_deg` > 0: the face turns toward the image's right (the nose moves to
  larger x). On an unmirrored webcam, a learner turning to their own left does
  this. Browsers mirror the local preview, not the transmitted track, so frames
  that reach the server are unmirrored unless the client flips them itself.
- `pitch_deg` > 0: the face turns up (the nose moves to smaller y).
- `roll_deg` > 0: the eye line turns clockwise in the image (y grows downward).

Pose comes from `cv2.solvePnP` of six landmarks against a generic 3D face model
(the model widely used with dlib landmarks, in millimetre-like units), through a
pinhole camera whose focal length equals the frame width and whose principal
point is the frame centre. Absolute angles carry the bias of a generic model and
an unknown camera (a few degrees); challenges therefore compare each frame with
the learner's own pose at the prompt, not with zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from verification.types import HeadPose

LEFT_EYE = tuple(range(36, 42))  # the eye on the image's left
RIGHT_EYE = tuple(range(42, 48))  # the eye on the image's right
POSE_POINTS = (30, 8, 36, 45, 48, 54)  # nose tip, chin, outer eye corners, mouth corners

# Camera axes: x to the image's right, y down, z away from the camera. The nose tip
# is the origin and the point nearest to the camera; the rest lie behind it.
_MODEL = np.array(
    [
        (0.0, 0.0, 0.0),  # 30 nose tip
        (0.0, 330.0, 65.0),  # 8 chin
        (-225.0, -170.0, 135.0),  # 36 outer corner, image-left eye
        (225.0, -170.0, 135.0),  # 45 outer corner, image-right eye
        (-150.0, 150.0, 125.0),  # 48 mouth corner, image left
        (150.0, 150.0, 125.0),  # 54 mouth corner, image right
    ],
    dtype=np.float64,
)


def _points(landmarks: Sequence[tuple[float, float]]) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"68 (x, y) landmarks needed, got shape {pts.shape}")
    return pts


def eye_aspect_ratio(landmarks: Sequence[tuple[float, float]]) -> float:
    """Mean eye aspect ratio of both eyes (Soukupova and Cech, 2016).

    EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) per eye: about 0.25-0.35 open,
    below about 0.15 closed. Scale- and in-plane-rotation-invariant.
    """
    pts = _points(landmarks)
    ears = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        p = pts[list(eye)]
        width = float(np.linalg.norm(p[0] - p[3]))
        height = float(np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
        ears.append(height / (2.0 * width) if width > 0 else 0.0)
    return float(np.mean(ears))


def inter_ocular_px(landmarks: Sequence[tuple[float, float]]) -> float:
    """Distance in pixels between the centres of the two eyes."""
    pts = _points(landmarks)
    return float(
        np.linalg.norm(pts[list(LEFT_EYE)].mean(axis=0) - pts[list(RIGHT_EYE)].mean(axis=0))
    )


def head_pose(landmarks: Sequence[tuple[float, float]], frame_size: tuple[int, int]) -> HeadPose:
    """Yaw, pitch and roll in degrees of one face; `frame_size` is (width, height).

    See the module docstring for the sign conventions and the model.
    """
    pts = _points(landmarks)
    w, h = frame_size
    camera = np.array([[w, 0.0, w / 2.0], [0.0, w, h / 2.0], [0.0, 0.0, 1.0]])
    image_points = pts[list(POSE_POINTS)]
    # Start from a frontal face at the distance its eye-corner span implies, so that
    # the iterative solver cannot settle on the mirror solution behind the camera.
    span = max(float(np.linalg.norm(image_points[3] - image_points[2])), 1.0)
    rvec0 = np.zeros((3, 1))
    z0 = w * 450.0 / span
    nose = image_points[0]
    tvec0 = np.array([[(nose[0] - w / 2.0) * z0 / w], [(nose[1] - h / 2.0) * z0 / w], [z0]])
    ok, rvec, _ = cv2.solvePnP(
        _MODEL,
        image_points,
        camera,
        np.zeros(4),
        rvec0,
        tvec0,
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise ValueError("head pose could not be solved from these landmarks")
    rot, _ = cv2.Rodrigues(rvec)
    # The face's forward direction (out of the face, toward the camera when frontal).
    fwd = rot @ np.array([0.0, 0.0, -1.0])
    yaw = math.degrees(math.atan2(float(fwd[0]), float(-fwd[2])))
    pitch = math.degrees(math.atan2(float(-fwd[1]), math.hypot(float(fwd[0]), float(fwd[2]))))
    eyes = pts[list(RIGHT_EYE)].mean(axis=0) - pts[list(LEFT_EYE)].mean(axis=0)
    roll = math.degrees(math.atan2(float(eyes[1]), float(eyes[0])))
    return HeadPose(round(yaw, 2), round(pitch, 2), round(roll, 2))
