"""The fail-safe zones of a cell: which body parts and robot links are inside which zone.

Pure geometry on numpy arrays, compiled pre-tests (`safety.kernels`) and shapely polygons; no
clock, no I/O. All coordinates are metres in the `cell` frame. A zone is a prism (a simple polygon footprint extruded over a
height range) or an axis-aligned box (a rectangle prism). A capsule (segment + radius) is
*inside* a zone when it comes within its radius of the prism: the segment is clipped to the
zone's height range grown by the radius, and its footprint is compared with the polygon in
the plane. That test is conservative: it may report a capsule inside that clears the
prism's top or bottom edge diagonally by less than its radius, never the other way round.

A restricted zone stops the robot as soon as a body capsule is in it; like any
presence-sensing zone it must be dimensioned by the cell's designer so that a person
entering it at the approach speed cannot reach the hazard before the robot has stopped
(ISO 13855:2010 clause 5, S = K·T + C).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import shapely

from content.cell import Zone
from safety import kernels
from safety.distance import human_capsules, stacked_capsules
from safety.errors import SafetyError
from safety.perception.types import HumanTrack

#: Roles that may change the zones at run time (issue 3: "needs the supervisor role").
ZONE_EDIT_ROLES = frozenset({"supervisor", "admin"})

#: Zone kinds checked against people and against the robot.
PEOPLE_KINDS = ("warning", "collaborative", "restricted")
ROBOT_KINDS = ("robot_keep_out",)
#: Margin of the exact pre-tests of `ZoneSet.capsules_inside`, metres: they decide only where
#: their distance is farther than this from the capsule's radius (their rounding and shapely's
#: are about 1e-15 m at cell scale, so they answer as shapely would); shapely decides the rest.
_PRETEST_MARGIN_M = 1e-9


@dataclass(frozen=True)
class ZoneViolation:
    """One subject inside one zone.

    Attributes:
        zone: the zone's name.
        kind: the zone's kind (`content.cell.ZONE_KINDS`).
        subject: a person's track id, or "robot".
        part: the body capsule ("left_elbow-left_wrist") or the robot link.
    """

    zone: str
    kind: str
    subject: str
    part: str


class ZoneSet:
    """The zones of a cell, compiled for fast capsule tests. Immutable, so thread-safe.

    Args:
        zones: the zones of the cell description.
    """

    def __init__(self, zones: Sequence[Zone] = ()) -> None:
        self.zones: tuple[Zone, ...] = tuple(zones)
        self._polygons = []
        self._z = np.empty((len(self.zones), 2))
        for i, zone in enumerate(self.zones):
            if zone.box is not None:
                (x0, y0, z0), (x1, y1, z1) = zone.box.min, zone.box.max
                polygon = shapely.box(x0, y0, x1, y1)
                self._z[i] = (z0, z1)
            else:
                polygon = shapely.Polygon(zone.footprint)
                self._z[i] = zone.z_range_m
            shapely.prepare(polygon)
            self._polygons.append(polygon)
        self._bounds = np.array([p.bounds for p in self._polygons]).reshape(len(self.zones), 4)
        self._edges = [self._inward_edges(p) for p in self._polygons]
        #: per zone, its footprint's edges as (start (E, 2), start-to-end (E, 2), the same over its
        #: squared length (E, 2)), metres and 1/metres, `cell` frame
        self._edge_vectors = []
        for polygon in self._polygons:
            ring = np.asarray(polygon.exterior.coords, dtype=np.float64)[:, :2]
            along = np.diff(ring, axis=0)
            length2 = np.einsum("ei,ei->e", along, along)
            # along / |along|^2, 0 for an edge of length 0
            scaled = along / np.where(length2 > 0.0, length2, np.inf)[:, None]
            self._edge_vectors.append((ring[:-1], along, scaled))
        #: per zone, the arguments of `safety.kernels.zone_capsules` after the capsules
        self._kernel_args = []
        for i, (edges, (start, along, scaled)) in enumerate(zip(self._edges, self._edge_vectors)):
            normal, offset = (np.empty((0, 2)), np.empty(0)) if edges is None else edges
            self._kernel_args.append((float(self._z[i, 0]), float(self._z[i, 1]),
                                      np.ascontiguousarray(self._bounds[i]), edges is not None,
                                      *(np.ascontiguousarray(x, dtype=np.float64)
                                        for x in (normal, offset, start, along, scaled))))

    @staticmethod
    def _inward_edges(polygon: shapely.Polygon) -> tuple[np.ndarray, np.ndarray] | None:
        """For a convex footprint, its edges as half-planes n . x >= c with unit inward normals
        n (E, 2) and offsets c (E,); None for a concave one (shapely alone decides there)."""
        ring = np.asarray(shapely.geometry.polygon.orient(polygon, 1.0).exterior.coords)[:, :2]
        edge = np.diff(ring, axis=0)
        turn = edge[:, 0] * np.roll(edge[:, 1], -1) - edge[:, 1] * np.roll(edge[:, 0], -1)
        if (turn < 0.0).any():
            return None
        normal = np.stack((-edge[:, 1], edge[:, 0]), axis=1) / np.linalg.norm(edge, axis=1)[:, None]
        return normal, np.einsum("ei,ei->e", normal, ring[:-1])

    def __len__(self) -> int:
        return len(self.zones)

    def prisms(self) -> list[tuple[Zone, np.ndarray, tuple[float, float]]]:
        """Every zone as a prism: (zone, footprint (V, 2) metres counter-clockwise without the
        closing vertex, (bottom, top) metres), `cell` frame; a box is a 4-vertex prism."""
        out = []
        for zone, polygon, (z0, z1) in zip(self.zones, self._polygons, self._z):
            ring = shapely.geometry.polygon.orient(polygon, 1.0).exterior.coords
            out.append((zone, np.asarray(ring, dtype=np.float64)[:-1, :2], (float(z0), float(z1))))
        return out

    def has(self, kind: str) -> bool:
        """True when at least one zone is of `kind`."""
        return any(z.kind == kind for z in self.zones)

    def capsules_inside(self, index: int, segments: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """Which capsules are inside zone `index` (see the module docstring for the test).

        Exact compiled pre-tests decide what they can (`safety.kernels.zone_capsules`: the slab
        test, and in the plane the half-planes of a convex footprint or a concave one's bounding
        box, each only farther than `_PRETEST_MARGIN_M` from the radius), shapely's distance the
        rest (near a convex footprint's corners or across its edges; anything near a concave one).

        Args:
            index: zone index in `zones`.
            segments: (N, 2, 3) capsule axes, metres, `cell` frame.
            radii: (N,) capsule radii, metres.

        Returns:
            (N,) bool. Capsules with non-finite coordinates count as inside (fail-safe).
        """
        segs = np.ascontiguousarray(segments, dtype=np.float64)
        r = np.ascontiguousarray(radii, dtype=np.float64)
        status, clipped = kernels.zone_capsules(segs, r, *self._kernel_args[index], _PRETEST_MARGIN_M)
        inside = status == kernels.ZONE_INSIDE
        rest = np.flatnonzero(status == kernels.ZONE_UNDECIDED)
        if rest.size:
            p, q = clipped[rest, 0, :2], clipped[rest, 1, :2]
            point = np.linalg.norm(q - p, axis=1) < 1e-9
            geoms = np.empty(len(rest), dtype=object)
            if point.any():
                geoms[point] = shapely.points(p[point])
            if (~point).any():
                geoms[~point] = shapely.linestrings(np.stack([p[~point], q[~point]], axis=1))
            dist = shapely.distance(self._polygons[index], geoms)
            inside[rest] = ~(dist > r[rest])  # NaN counts as inside (fail-safe)
        return inside

    def people_violations(self, tracks: Sequence[HumanTrack],
                          capsules: Sequence[tuple[np.ndarray, np.ndarray, tuple[str, ...]]] | None = None
                          ) -> tuple[ZoneViolation, ...]:
        """Every (person, zone) pair of a warning, collaborative or restricted zone with a body
        capsule inside; the first capsule found is named.

        Args:
            tracks: the people.
            capsules: per track, its body capsules (segments, radii, names) when the caller has
                already built them (`safety.distance.human_capsules`); built here otherwise.
        """
        kinds = [i for i, z in enumerate(self.zones) if z.kind in PEOPLE_KINDS]
        if not kinds or not tracks:
            return ()
        if capsules is None:
            capsules = [human_capsules(t.keypoints_cell, t.confidence) for t in tracks]
        sizes = [len(c[1]) for c in capsules]
        if not any(sizes):
            return ()
        segs, radii = stacked_capsules(capsules)
        out: list[ZoneViolation] = []
        for i in kinds:
            inside = self.capsules_inside(i, segs, radii).tolist()
            if True not in inside:
                continue
            zone = self.zones[i]
            start = 0
            for k, size in enumerate(sizes):                  # each person's first capsule inside
                if True in inside[start:start + size]:
                    name = capsules[k][2][inside.index(True, start, start + size) - start]
                    out.append(ZoneViolation(zone.name, zone.kind, tracks[k].track_id, name))
                start += size
        return tuple(out)

    def robot_violations(self, segments: np.ndarray, radii: np.ndarray,
                         names: Sequence[str]) -> tuple[ZoneViolation, ...]:
        """Robot links inside a robot keep-out zone.

        Args:
            segments: (K, 2, 3) link capsule axes, metres, `cell` frame.
            radii: (K,) metres.
            names: (K,) link names.
        """
        out: list[ZoneViolation] = []
        for i, zone in enumerate(self.zones):
            if zone.kind not in ROBOT_KINDS:
                continue
            hit = self.capsules_inside(i, segments, radii)
            out.extend(ZoneViolation(zone.name, zone.kind, "robot", names[k]) for k in np.flatnonzero(hit))
        return tuple(out)

    def first_path_violation(self, segments: np.ndarray, radii: np.ndarray,
                             names: Sequence[str]) -> tuple[int, ZoneViolation] | None:
        """The first sample of a swept robot path that puts a link into a keep-out zone.

        Args:
            segments: (T, K, 2, 3) link capsule axes at T samples along the path, metres.
            radii: (K,) metres.
            names: (K,) link names.

        Returns:
            (sample index, violation) or None when the whole path stays out.
        """
        t, k = segments.shape[:2]
        flat = segments.reshape(t * k, 2, 3)
        r = np.tile(np.asarray(radii, dtype=np.float64), t)
        first: tuple[int, ZoneViolation] | None = None
        for i, zone in enumerate(self.zones):
            if zone.kind not in ROBOT_KINDS:
                continue
            hit = self.capsules_inside(i, flat, r)
            if hit.any():
                j = int(np.argmax(hit))
                sample, link = divmod(j, k)
                if first is None or sample < first[0]:
                    first = (sample, ZoneViolation(zone.name, zone.kind, "robot", names[link]))
        return first


class CellZones:
    """The zones in force in a cell, shared by the monitor and the gate; replaced atomically.

    Thread safety: `current()` is lock-free (it returns an immutable `ZoneSet` swapped by
    reference) and may be called from the monitor's real-time cycle; `replace()` may be
    called from any thread.

    Args:
        zones: the cell description's zones.
        on_change: called as `on_change(actor_name, old, new)` after a replacement (the audit
            log), on the caller's thread.
    """

    def __init__(self, zones: Sequence[Zone] = (),
                 on_change: Callable[[str, ZoneSet, ZoneSet], None] | None = None) -> None:
        self._current = ZoneSet(zones)
        self._lock = threading.Lock()
        self._on_change = on_change

    def current(self) -> ZoneSet:
        """The zones in force now."""
        return self._current

    def replace(self, zones: Sequence[Zone], actor_name: str, roles: frozenset[str]) -> ZoneSet:
        """Put `zones` in force for every following monitor cycle and gate check.

        Raises:
            SafetyError: `roles` holds neither supervisor nor admin.
        """
        if not roles & ZONE_EDIT_ROLES:
            raise SafetyError(f"role: {actor_name!r} may not change zones; that needs supervisor or admin")
        new = ZoneSet(zones)
        with self._lock:
            old, self._current = self._current, new
        if self._on_change is not None:
            self._on_change(actor_name, old, new)
        return new
