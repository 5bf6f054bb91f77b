"""The fail-safe zones of a cell: which body parts and robot links are inside which zone.

Pure geometry on numpy arrays and shapely polygons; no clock, no I/O. All coordinates are
metres in the `cell` frame. A zone is a prism (a simple polygon footprint extruded over a
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
from safety.distance import human_capsules
from safety.errors import SafetyError
from safety.perception.types import HumanTrack

#: Roles that may change the zones at run time (issue 3: "needs the supervisor role").
ZONE_EDIT_ROLES = frozenset({"supervisor", "admin"})

#: Zone kinds checked against people and against the robot.
PEOPLE_KINDS = ("warning", "collaborative", "restricted")
ROBOT_KINDS = ("robot_keep_out",)
#: Margin of the exact numpy tests in `ZoneSet.capsules_inside`, metres: they decide only where
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

        Exact numpy tests decide what they can (`_plane_decided`), shapely's distance the rest.

        Args:
            index: zone index in `zones`.
            segments: (N, 2, 3) capsule axes, metres, `cell` frame.
            radii: (N,) capsule radii, metres.

        Returns:
            (N,) bool. Capsules with non-finite coordinates count as inside (fail-safe).
        """
        segs = np.asarray(segments, dtype=np.float64)
        r = np.asarray(radii, dtype=np.float64)
        n = segs.shape[0]
        if n == 0:
            return np.zeros(0, dtype=bool)
        z0, z1 = self._z[index]
        if np.isfinite(segs).all() and np.isfinite(r).all():
            finite = None
            # exact early exit: every capsule is at least the gap between the set's bounding
            # box and the prism's from the prism (in the plane, or in height: the slab test)
            x0, y0, x1, y1 = self._bounds[index]
            corners = segs.reshape(2 * n, 3)
            low, high = corners.min(axis=0), corners.max(axis=0)
            gap = max(x0 - high[0], low[0] - x1, y0 - high[1], low[1] - y1, z0 - high[2], low[2] - z1)
            if gap > r.max() + _PRETEST_MARGIN_M:
                return np.zeros(n, dtype=bool)
        else:       # rare: the non-finite ones are inside; zeros keep the arithmetic quiet
            finite = np.isfinite(segs).all(axis=(1, 2)) & np.isfinite(r)
            segs = np.where(finite[:, None, None], segs, 0.0)
            r = np.where(finite, r, 0.0)
        # the part of each axis within the zone's height range grown by the radius: [t_lo, t_hi]
        a, b = segs[:, 0], segs[:, 1]
        a_z = a[:, 2]
        lo = z0 - r
        hi = z1 + r
        dz = b[:, 2] - a_z
        flat = np.abs(dz) < 1e-12
        sloped = ~flat
        t1 = np.divide(lo - a_z, dz, out=np.zeros(n), where=sloped)
        t2 = np.divide(hi - a_z, dz, out=np.ones(n), where=sloped)
        t_lo = np.maximum(np.minimum(t1, t2), 0.0)
        t_hi = np.minimum(np.maximum(t1, t2), 1.0)
        in_slab = np.where(flat, (a_z >= lo) & (a_z <= hi), t_lo <= t_hi)
        if finite is not None:
            in_slab &= finite
            inside = ~finite
        else:
            inside = np.zeros(n, dtype=bool)
        if not in_slab.any():
            return inside
        idx = np.flatnonzero(in_slab)
        if len(idx) < n:
            a, b, t_lo, t_hi, r = a[idx], b[idx], t_lo[idx], t_hi[idx], r[idx]
        d = b - a
        p = a + d * t_lo[:, None]
        q = a + d * t_hi[:, None]
        decided = self._plane_decided(index, p, q, r, inside, idx)
        if decided.all():
            return inside
        idx, p, q, r = idx[~decided], p[~decided], q[~decided], r[~decided]
        point = np.linalg.norm(q[:, :2] - p[:, :2], axis=1) < 1e-9
        geoms = np.empty(len(idx), dtype=object)
        if point.any():
            geoms[point] = shapely.points(p[point, :2])
        if (~point).any():
            geoms[~point] = shapely.linestrings(np.stack([p[~point, :2], q[~point, :2]], axis=1))
        dist = shapely.distance(self._polygons[index], geoms)
        inside[idx] = ~(dist > r)  # NaN counts as inside (fail-safe)
        return inside

    def _plane_decided(self, index: int, p: np.ndarray, q: np.ndarray, r: np.ndarray,
                       inside: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Exact numpy decisions in the plane for the clipped axes [p, q] (N, 3) of capsules of
        radii r (N,) against the footprint of zone `index`: sets `inside[idx]` where decided
        inside and returns the (N,) decided mask; shapely decides the rest (near a convex
        footprint's corners or across its edges; anything near a concave one). It costs about
        15 us for a few segments, less than an exact numpy segment-to-edges pass would.

        A concave footprint: bounding boxes farther apart than r + `_PRETEST_MARGIN_M`: outside.
        A convex one, with its edges as half-planes:
          - an end deeper than the margin inside every edge: distance 0, inside;
          - both ends beyond one edge's line by more than r + margin: outside (the polygon lies
            on the other side of that line; this covers the bounding-box test);
          - an end closer than r - margin to an edge (as a segment): inside (the common case of
            a body part just outside a zone's edge).
        """
        edges = self._edges[index]
        if edges is None:
            x0, y0, x1, y1 = self._bounds[index]
            box_lo, box_hi = np.minimum(p[:, :2], q[:, :2]), np.maximum(p[:, :2], q[:, :2])
            gap = np.maximum(np.maximum(x0 - box_hi[:, 0], box_lo[:, 0] - x1),
                             np.maximum(y0 - box_hi[:, 1], box_lo[:, 1] - y1))
            return gap > r + _PRETEST_MARGIN_M
        normal, offset = edges
        depth_p = p[:, :2] @ normal.T
        depth_p -= offset                                                       # (N, E)
        depth_q = q[:, :2] @ normal.T
        depth_q -= offset
        within = np.maximum(depth_p.min(axis=1), depth_q.min(axis=1)) > _PRETEST_MARGIN_M
        beyond = (np.maximum(depth_p, depth_q) < -(r + _PRETEST_MARGIN_M)[:, None]).any(axis=1)
        inside[idx[within]] = ~(0.0 > r[within])          # as shapely's distance 0 > r decides
        decided = within | beyond
        rest = np.flatnonzero(~decided)
        if rest.size:
            start, along, scaled = self._edge_vectors[index]                    # (E, 2) each
            ends = np.concatenate((p[rest, :2], q[rest, :2]))[:, None, :] - start  # (2M, E, 2)
            t = np.einsum("mei,ei->me", ends, scaled)           # each end's projection on each edge
            ends -= np.clip(t, 0.0, 1.0)[:, :, None] * along
            squared = np.einsum("mei,mei->me", ends, ends).min(axis=1)
            squared = squared.reshape(2, rest.size).min(axis=0)            # the nearer end
            near = np.sqrt(squared) < r[rest] - _PRETEST_MARGIN_M
            inside[idx[rest[near]]] = True
            decided[rest[near]] = True
        return decided

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
        segs = np.concatenate([c[0] for c in capsules])
        radii = np.concatenate([c[1] for c in capsules])
        owner = np.repeat(np.arange(len(sizes)), sizes)                   # capsule -> person
        starts = np.cumsum(sizes) - sizes
        out: list[ZoneViolation] = []
        for i in kinds:
            hit = np.flatnonzero(self.capsules_inside(i, segs, radii))
            if hit.size == 0:
                continue
            person = owner[hit]                                           # non-decreasing
            first = np.flatnonzero(np.diff(person, prepend=-1))   # each person's first capsule
            zone = self.zones[i]
            for k, j in zip(person[first].tolist(), hit[first].tolist()):
                name = capsules[k][2][j - starts[k]]
                out.append(ZoneViolation(zone.name, zone.kind, tracks[k].track_id, name))
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
