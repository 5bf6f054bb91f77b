"""The twin drawn into the worker's camera image: the composited view for monocular glasses.

`draw_overlay` takes one camera image and what the worker's HMI should see over it (`OverlayInputs`:
the newest `twin_state` message, the HMI's camera pose and the session's annotations) and draws, in
this order: the zones' outlines (their prisms' floor and top polygons and vertical edges), the path
preview of the active trajectory, the robot's link capsules (the axis of each capsule and a circle
of its radius at each end, from the twin's ``robot.links``, i.e. `RobotState.link_segments` and
`link_radii_m`, the capsules the safety monitor measures against), the tracked people's skeletons
(`safety.perception.POSE_LIMBS` between their keypoints), the annotations, and on top a banner
with the safety mode across the full width.

Projection: a pinhole camera with the HMI's reported pose (`xr_server.anchors.CameraPose`, the
optical frame x right, y down, z forward, in the `cell` frame) and intrinsics from its horizontal
field of view and aspect (`camera_matrix`: principal point at the image centre, no distortion),
the same model `xr_server.anchors.pixel_ray` inverts; points are projected with
`cv2.projectPoints`. Segments are clipped at `NEAR_M` in front of the camera, so a capsule that
passes behind the worker is drawn up to the image edge and never mirrored. Without a camera pose
only what needs none is drawn: the banner and the annotations at their image positions.

An annotation with a 3D anchor follows it: the whole mark is moved so that its anchor point (an
arrow's head, a circle's centre, a label's anchor) lands where the anchor projects; one whose
anchor is behind the camera is not drawn; one without an anchor stays where the expert put it.

Pure functions on numpy images (H, W, 3) uint8 BGR, drawn in place. Thread-safe (no state).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from safety.perception.types import POSE_LIMBS
from xr_server.anchors import CameraPose, rotation_matrix

#: Segments are clipped this far in front of the camera's optical centre, metres.
NEAR_M = 0.05

#: Colours, BGR.
ROBOT_BGR = (0, 140, 255)
PEOPLE_BGR = (255, 255, 0)
PLAN_BGR = (255, 255, 255)
ZONE_BGR = {"warning": (0, 220, 255), "collaborative": (0, 200, 0), "restricted": (0, 0, 255),
            "robot_keep_out": (255, 0, 255)}
#: Banner colour and text of each safety mode (`safety.decision.SafetyMode` values); `None`: no
#: safety state in the twin.
BANNER = {"full_speed": ((0, 150, 0), "FULL SPEED"),
          "reduced_speed": ((0, 170, 255), "REDUCED SPEED"),
          "protective_stop": ((0, 0, 220), "PROTECTIVE STOP"),
          "fault_stop": ((0, 0, 160), "FAULT STOP - RESET NEEDED"),
          None: ((90, 90, 90), "SAFETY STATE UNKNOWN")}
#: Banner height, fraction of the image height.
BANNER_HEIGHT = 0.08


@dataclass(frozen=True)
class OverlayInputs:
    """What one composited frame shows.

    Attributes:
        twin: the newest `twin_state` message (`xr_server/twin_schema.json`), or None.
        camera: the HMI's camera pose and field of view, or None (not reported yet).
        annotations: the session's annotations as sent on the wire
            (`xr_server.annotations.annotation_dict`).
    """

    twin: dict | None
    camera: CameraPose | None
    annotations: Sequence[dict] = field(default_factory=tuple)


def camera_matrix(camera: CameraPose, width: int, height: int) -> np.ndarray:
    """The (3, 3) intrinsic matrix K for an image of `width` x `height` pixels: focal lengths from
    the horizontal field of view and the aspect (fy = fx when the aspect is the image's), the
    principal point at the image centre."""
    tan_h = math.tan(math.radians(camera.hfov_deg) / 2.0)
    tan_v = tan_h / camera.aspect
    return np.array([[width / 2.0 / tan_h, 0.0, width / 2.0],
                     [0.0, height / 2.0 / tan_v, height / 2.0],
                     [0.0, 0.0, 1.0]])


def world_to_camera(camera: CameraPose) -> tuple[np.ndarray, np.ndarray]:
    """The rotation (3, 3) and translation (3,) taking `cell` points into the optical frame."""
    rotation = rotation_matrix(camera.orientation).T
    return rotation, -rotation @ np.asarray(camera.position_m, dtype=float)


def project_segments(segments: np.ndarray, camera: CameraPose, width: int,
                     height: int) -> tuple[np.ndarray, np.ndarray]:
    """Project segments into the image, clipped at `NEAR_M` in front of the camera.

    Args:
        segments: (N, 2, 3) float, metres, `cell` frame.

    Returns:
        (pixels (N, 2, 2) float64, (x right, y down); visible (N,) bool: False where the whole
        segment is behind the near plane (its pixels are then meaningless).
    """
    segments = np.asarray(segments, dtype=float).reshape(-1, 2, 3)
    if len(segments) == 0:
        return np.empty((0, 2, 2)), np.zeros(0, dtype=bool)
    rotation, translation = world_to_camera(camera)
    depth = segments @ rotation[2] + translation[2]  # (N, 2), z of the optical frame
    visible = (depth > NEAR_M).any(axis=1)
    clipped = segments.copy()
    for end, other in ((0, 1), (1, 0)):
        behind = visible & (depth[:, end] <= NEAR_M)
        if behind.any():
            near, far = depth[behind, end], depth[behind, other]
            s = ((NEAR_M - near) / (far - near))[:, None]
            clipped[behind, end] = (segments[behind, end]
                                    + s * (segments[behind, other] - segments[behind, end]))
    rvec, _ = cv2.Rodrigues(rotation)
    pixels, _ = cv2.projectPoints(clipped.reshape(-1, 3), rvec, translation,
                                  camera_matrix(camera, width, height), None)
    return pixels.reshape(-1, 2, 2), visible


def _depths(points: np.ndarray, camera: CameraPose) -> np.ndarray:
    rotation, translation = world_to_camera(camera)
    return np.asarray(points, dtype=float).reshape(-1, 3) @ rotation[2] + translation[2]


_LIMIT = 1 << 20  # pixel coordinates handed to OpenCV are kept within +-2^20


def _pt(p: np.ndarray) -> tuple[int, int]:
    return (int(min(max(round(float(p[0])), -_LIMIT), _LIMIT)),
            int(min(max(round(float(p[1])), -_LIMIT), _LIMIT)))


def _ints(pixels: np.ndarray) -> list:
    """`pixels` (..., 2) as nested lists of ints within +-`_LIMIT`, for OpenCV's drawing."""
    return np.clip(np.rint(pixels), -_LIMIT, _LIMIT).astype(np.int64).tolist()


def _hex_bgr(color: str | None,
             default: tuple[int, int, int] = (0, 204, 255)) -> tuple[int, int, int]:
    if not color or len(color) != 7 or not color.startswith("#"):
        return default
    try:
        r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    except ValueError:
        return default
    return b, g, r


def _lines(image: np.ndarray, segments: list, color: tuple[int, int, int], camera: CameraPose,
           thickness: int) -> None:
    if not segments:
        return
    height, width = image.shape[:2]
    pixels, visible = project_segments(np.asarray(segments, dtype=float), camera, width, height)
    for (a, b), ok in zip(_ints(pixels), visible.tolist()):
        if ok:
            cv2.line(image, a, b, color, thickness, cv2.LINE_AA)


def _zones(image: np.ndarray, zones: list, camera: CameraPose, scale: int) -> None:
    for zone in zones:
        footprint = np.asarray(zone.get("footprint") or [], dtype=float).reshape(-1, 2)
        z_lo, z_hi = (list(zone.get("z_range_m") or [0.0, 0.0]) + [0.0, 0.0])[:2]
        n = len(footprint)
        segments = []
        for i in range(n):
            (x0, y0), (x1, y1) = footprint[i], footprint[(i + 1) % n]
            segments += [((x0, y0, z_lo), (x1, y1, z_lo)), ((x0, y0, z_hi), (x1, y1, z_hi)),
                         ((x0, y0, z_lo), (x0, y0, z_hi))]
        _lines(image, segments, ZONE_BGR.get(zone.get("kind", ""), (200, 200, 200)), camera,
               2 * scale)


def _robot(image: np.ndarray, robot: dict, camera: CameraPose, scale: int) -> None:
    links = robot.get("links") or []
    if not links:
        return
    height, width = image.shape[:2]
    segments = np.array([[link["a"], link["b"]] for link in links], dtype=float)
    pixels, visible = project_segments(segments, camera, width, height)
    focal = camera_matrix(camera, width, height)[0, 0]
    depths = _depths(segments.reshape(-1, 3), camera).reshape(-1, 2)
    for link, (a, b), ok, depth in zip(links, _ints(pixels), visible.tolist(), depths.tolist()):
        if not ok:
            continue
        cv2.line(image, a, b, ROBOT_BGR, 3 * scale, cv2.LINE_AA)
        for end, z in ((a, depth[0]), (b, depth[1])):
            if z > NEAR_M:
                radius = int(min(focal * float(link["r"]) / z, 4 * max(width, height)))
                cv2.circle(image, end, max(radius, 2), ROBOT_BGR, 2 * scale, cv2.LINE_AA)


def _people(image: np.ndarray, people: list, camera: CameraPose, scale: int) -> None:
    segments = []
    for person in people:
        keypoints = person.get("keypoints") or []
        for i, j in POSE_LIMBS:
            if i < len(keypoints) and j < len(keypoints) and keypoints[i] and keypoints[j]:
                segments.append((keypoints[i][:3], keypoints[j][:3]))
    _lines(image, segments, PEOPLE_BGR, camera, 2 * scale)


def _plan(image: np.ndarray, plan: dict, camera: CameraPose, scale: int) -> None:
    points = plan.get("points") or []
    _lines(image, [(points[i], points[i + 1]) for i in range(len(points) - 1)], PLAN_BGR, camera,
           scale)


def _annotation(image: np.ndarray, annotation: dict, camera: CameraPose | None, scale: int) -> None:
    height, width = image.shape[:2]
    kind = annotation.get("kind")
    points = np.asarray(annotation.get("points") or [], dtype=float).reshape(-1, 2)
    points = points * (width, height)
    if len(points) == 0:
        return
    anchor_px = points[1] if kind == "arrow" and len(points) > 1 else points[0]
    anchor = annotation.get("anchor")
    if anchor is not None:
        if camera is None:
            return  # it belongs to a place in the cell, and we do not know where the camera is
        position = np.asarray(anchor["position_m"], dtype=float)
        pixels, visible = project_segments(np.array([[position, position]]), camera, width, height)
        if not visible[0] or _depths(position, camera)[0] <= NEAR_M:
            return
        points = points + (pixels[0, 0] - anchor_px)
        anchor_px = pixels[0, 0]
    color = _hex_bgr(annotation.get("color"))
    if kind == "arrow" and len(points) > 1:
        cv2.arrowedLine(image, _pt(points[0]), _pt(points[1]), color, 3 * scale, cv2.LINE_AA,
                        tipLength=0.2)
    elif kind == "circle":
        radius = int(float(annotation.get("radius") or 0.05) * width)
        cv2.circle(image, _pt(points[0]), max(radius, 2), color, 3 * scale, cv2.LINE_AA)
    text = annotation.get("text") or ""
    if text:
        font = 0.5 * scale + 0.2
        origin = _pt(anchor_px + (8 * scale, -8 * scale))
        cv2.putText(image, text[:60], origin, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0),
                    3 * scale + 1, cv2.LINE_AA)
        cv2.putText(image, text[:60], origin, cv2.FONT_HERSHEY_SIMPLEX, font, color, scale,
                    cv2.LINE_AA)
        if kind == "label":
            cv2.circle(image, _pt(anchor_px), 4 * scale, color, -1, cv2.LINE_AA)


@functools.lru_cache(maxsize=64)
def _banner_image(width: int, band: int, color: tuple[int, int, int], text: str,
                  scale: int) -> np.ndarray:
    banner = np.empty((band, width, 3), np.uint8)
    banner[:] = color
    font = band / 40.0
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, font, 2 * scale)
    cv2.putText(banner, text, ((width - text_w) // 2, (band + text_h) // 2),
                cv2.FONT_HERSHEY_DUPLEX, font, (255, 255, 255), 2 * scale, cv2.LINE_AA)
    banner.flags.writeable = False
    return banner


def _banner(image: np.ndarray, safety: dict | None, scale: int) -> None:
    height, width = image.shape[:2]
    mode = None if safety is None else safety.get("mode")
    color, text = BANNER.get(mode, BANNER[None])
    if safety is not None and mode == "reduced_speed":
        text = f"{text} {round(100 * float(safety.get('speed_scale', 0.0)))} %"
    band = max(int(BANNER_HEIGHT * height), 12)
    image[:band] = _banner_image(width, band, color, text, scale)


def draw_overlay(image: np.ndarray, inputs: OverlayInputs) -> np.ndarray:
    """Draw the twin, the annotations and the safety banner into `image`, in place.

    Args:
        image: (H, W, 3) uint8 BGR, C-contiguous; the worker's camera frame.
        inputs: what to draw (`OverlayInputs`); a twin message with missing parts draws the rest.

    Returns:
        `image`.
    """
    scale = max(1, round(image.shape[0] / 480))
    twin = inputs.twin or {}
    camera = inputs.camera
    if camera is not None:
        _zones(image, twin.get("zones") or [], camera, scale)
        if twin.get("plan"):
            _plan(image, twin["plan"], camera, scale)
        if twin.get("robot"):
            _robot(image, twin["robot"], camera, scale)
        _people(image, twin.get("people") or [], camera, scale)
    for annotation in inputs.annotations:
        _annotation(image, annotation, camera, scale)
    _banner(image, twin.get("safety"), scale)
    return image
