"""The `xrcell` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from content.errors import ContentError
from robot_bridge.errors import BridgeError
from safety.blas import single_threaded_blas
from safety.errors import SafetyError
from xr_server.errors import XrServerError


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _add_tls_arguments(parser: argparse.ArgumentParser, default_dir: Path) -> None:
    """--tls-cert/--tls-key, --self-signed, --tls-san, --tls-dir (`xr_server.tls.server_tls`)."""
    tls = parser.add_argument_group(
        "TLS", "HTTPS for the pages: browsers allow the camera and WebXR only in a secure context "
               "(HTTPS, or http://localhost on the device itself)")
    tls.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                     help="PEM certificate (chain) of the server")
    tls.add_argument("--tls-key", type=Path, default=None, metavar="FILE",
                     help="PEM private key of --tls-cert, unencrypted")
    tls.add_argument("--self-signed", action="store_true",
                     help="a lab: make (once) and re-use a self-signed certificate in --tls-dir "
                          "for localhost, --host (or this machine's name and addresses for "
                          "0.0.0.0) and --tls-san; prints its SHA-256 fingerprint")
    tls.add_argument("--tls-san", action="append", default=[], metavar="NAME",
                     help="another DNS name or IP address for --self-signed (repeatable)")
    tls.add_argument("--tls-dir", type=Path, default=default_dir, metavar="DIR",
                     help="where --self-signed keeps its certificate and key (default: %(default)s)")


def _server_tls(args: argparse.Namespace):
    """The `xr_server.tls.ServerTls` the flags ask for (None: plain HTTP); prints where the
    certificate comes from and its fingerprint. Raises `TlsError`."""
    from xr_server.tls import server_tls

    tls, origin = server_tls(cert_path=args.tls_cert, key_path=args.tls_key,
                             self_signed=args.self_signed, host=args.host,
                             extra_names=args.tls_san, directory=args.tls_dir)
    if tls is not None:
        print(f"xrcell: TLS certificate {tls.cert_path} ({origin}) for {', '.join(tls.names)}",
              flush=True)
        print(f"xrcell: its SHA-256 fingerprint: {tls.fingerprint_sha256}", flush=True)
        if origin.startswith("self-signed"):
            print("xrcell: browsers warn about a self-signed certificate: compare the fingerprint "
                  "they show with this one, or install the certificate on the devices", flush=True)
    return tls


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xrcell", description="XR worker assistance and human-robot collaboration backend")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the embedded demo cell (sim robot, real footage, safety, dashboard)")
    from xr_server.demo import DEFAULT_CELL, REPO_ROOT
    demo.add_argument("--cell", type=Path, default=DEFAULT_CELL, help="cell description (default: %(default)s)")
    demo.add_argument("--headless", action="store_true", help="no web server; print progress, write --report")
    demo.add_argument("--duration", type=_positive, default=None, metavar="S", help="stop after S seconds")
    demo.add_argument("--report", type=Path, default=None, metavar="FILE", help="write a JSON report at the end")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--db", default=None, help="storage URL (default: sqlite file in data/)")
    _add_tls_arguments(demo, REPO_ROOT / "data" / "tls")

    serve = sub.add_parser("serve", help="serve one cell: its robot backend (sim, dds, ros2), "
                                         "worker tracking from its cameras, safety monitor, "
                                         "command gate, dashboard")
    serve.add_argument("--cell", type=Path, required=True,
                       help="cell description (launch/cells/*.yaml)")
    serve.add_argument("--robot", choices=["sim", "dds", "ros2"], default=None,
                       help="robot backend (default: the cell's robot.backend); dds: ROS 2 over "
                            "Cyclone DDS, domain from ROS_DOMAIN_ID; ros2: rclpy")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--db", default=None, help="storage URL of users and the audit log "
                                                  "(default: sqlite file in data/)")
    serve.add_argument("--duration", type=_positive, default=None, metavar="S",
                       help="stop after S seconds")
    _add_tls_arguments(serve, REPO_ROOT / "data" / "tls")

    scen = sub.add_parser("scenario", help="play scripted people against the simulated robot through the safety "
                                         "monitor and gate (tests/scenarios/library/*.yaml)")
    scen.add_argument("files", type=Path, nargs="+", metavar="FILE.yaml")
    scen.add_argument("--report", type=Path, default=None, metavar="OUT.json",
                      help="write every scenario's figures and the library summary")

    check = sub.add_parser("check-cell", help="validate a cell description file")
    check.add_argument("file", type=Path)
    check.add_argument("--cameras", action="store_true",
                       help="also open every fixed camera (file, stream or device), read one frame and "
                            "check its size against the camera's calibration")
    check.add_argument("--timeout", type=float, default=5.0, metavar="S",
                       help="with --cameras: how long to wait for each camera's first frame (default 5 s)")

    occupancy = sub.add_parser("occupancy", help="the occupancy (depth) channel")
    occ_sub = occupancy.add_subparsers(dest="occupancy_command", required=True)
    learn = occ_sub.add_parser(
        "learn", help="learn the static background over a run of the robot's program in "
                      "simulation (floor and robot, from the cell's depth camera), or with "
                      "--from-depth from the cell's real depth input while the robot runs "
                      "(fixtures too)")
    learn.add_argument("cell", type=Path, metavar="CELL.yaml")
    learn.add_argument("--program", type=Path, default=None, metavar="FILE.yaml",
                       help="a pick-and-place program (or a cell file with one); default: the cell's program")
    learn.add_argument("--out", type=Path, required=True, metavar="background.npz",
                       help="where to write the background (the cell's perception.depth.background)")
    learn.add_argument("--rate", type=_positive, default=None,
                       help="depth frames per second of program time (simulation; default 10)")
    learn.add_argument("--min-frames", type=int, default=2,
                       help="frames a voxel must be occupied in to count as background")
    learn.add_argument("--from-depth", action="store_true",
                       help="learn from the cell's perception.depth input while the robot runs; "
                            "refused if the skeleton channel sees a person or the robot state "
                            "goes stale")
    learn.add_argument("--duration-s", type=_positive, default=60.0,
                       help="--from-depth: how long to learn, seconds (default 60)")
    learn.add_argument("--robot", choices=["sim", "dds", "ros2"], default=None,
                       help="--from-depth: the robot backend (default: the cell's robot.backend)")

    models = sub.add_parser("models", help="MediaPipe pose models")
    models.add_argument("action", choices=["install"], help="install: copy lite/heavy from npm @mediapipe/pose")

    track = sub.add_parser(
        "track", help="track workers offline in recorded videos; write one JSON line per frame time",
        description="Track the people in recorded videos. With --calib and one video per camera they are tracked "
                    "in 3D (cell frame = the calibration's world frame): triangulated where two or more cameras see a person, "
                    "placed on the floor (--floor-z) where one does; one video without --calib is tracked in 2D. "
                    "Each video is matched to the calibration camera named like its file-name stem "
                    "(videos/cam01.mp4 -> camera 'cam01'), or as --cam-map STEM=CAMERA says. Progress goes to stderr.")
    track.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="video file, one per camera")
    track.add_argument("--calib", type=Path, default=None, metavar="FILE", help="calibration with every camera")
    track.add_argument("--calib-format", default="qca", metavar="FMT", help="calibration format (default: %(default)s)")
    track.add_argument("--cam-map", action="append", default=[], metavar="STEM=CAMERA",
                       help="video file stem to calibration camera name (repeatable, or comma-separated)")
    track.add_argument("--out", type=Path, default=None, metavar="FILE", help="JSON lines output (default: stdout)")
    track.add_argument("--show", type=Path, default=None, metavar="OUT.mp4", help="write an annotated video")
    track.add_argument("--rate", type=_positive, default=15.0, metavar="HZ",
                       help="frame times processed per second of video (default: %(default)s)")
    track.add_argument("--duration", type=_positive, default=None, metavar="S", help="only the first S seconds")
    track.add_argument("--resize", type=_positive, default=0.5, help="scale of the frames for pose estimation")
    track.add_argument("--model-complexity", type=int, default=1, choices=[0, 1, 2])
    track.add_argument("--floor-z", type=float, default=0.0, metavar="M",
                       help="height of the floor in the calibration's frame, z up, metres (default: %(default)s); "
                            "a person one camera alone sees is placed on it")

    samples = sub.add_parser("samples", help="sample data")
    samples.add_argument("action", choices=["fetch"], help="fetch: download the Pose2Sim demo footage")

    from xr_server import calibrate
    calibrate.add_parser(sub)

    from xr_server.users_cli import add_users_parser
    add_users_parser(sub, default_db_url=f"sqlite:///{REPO_ROOT / 'data' / 'xrcell.sqlite'}")

    audit = sub.add_parser("audit", help="the safety audit log: check the hash chain, show the newest records")
    audit.add_argument("action", choices=["verify", "tail"],
                       help="verify: check the chain, exit 1 naming the first broken record; tail: newest records")
    audit.add_argument("--db", default=None, help="storage URL (default: sqlite file in data/)")
    audit.add_argument("-n", type=int, default=20, help="tail: how many records (default: %(default)s)")
    return parser


def _audit(action: str, db_url: str | None, n: int) -> int:
    """`xrcell audit verify|tail`: read-only; never creates the database or the table."""
    import datetime
    import json

    from safety.audit import AuditLog
    from xr_server.demo import REPO_ROOT

    default = REPO_ROOT / "data" / "xrcell.sqlite"
    if db_url is None and not default.exists():
        print(f"xrcell: error: no database at {default} (pass --db URL)", file=sys.stderr)
        return 2
    log = AuditLog(db_url or f"sqlite:///{default}", read_only=True)
    try:
        if action == "verify":
            head = log.head()
            broken = log.verify(upto_seq=None if head is None else head.seq)
            if broken is not None:
                print(f"broken: {broken}")
                return 1
            print(f"ok: {0 if head is None else head.seq} records, chain intact")
            if head is not None:
                print(f"head: seq {head.seq} hash {head.hash}")
            return 0
        for record in log.tail(n):
            when = datetime.datetime.fromtimestamp(record.t, datetime.timezone.utc).isoformat(timespec="milliseconds")
            print(f"{record.seq:>8} {when} {record.kind:<16} {record.actor:<12} {record.reason}  "
                  f"{json.dumps(record.inputs, ensure_ascii=False)}")
        return 0
    finally:
        log.close()


def _check_cameras(cell, timeout_s: float) -> int:
    """`xrcell check-cell --cameras`: one line per fixed camera; 1 if any camera fails."""
    from content.calibration import load_camera_calibration
    from content.errors import CalibrationError
    from safety.errors import PerceptionError
    from safety.perception.stream import probe_picture_size, size_mismatch

    failed = 0
    for cam in cell.fixed_cameras():
        try:
            expected = load_camera_calibration(cam.calibration).image_size
            size = probe_picture_size(cam.video, timeout_s)
            problem = size_mismatch(size, expected)
        except (CalibrationError, PerceptionError) as exc:
            problem, size = str(exc), None
        if problem is None:
            print(f"  {cam.id}: ok: {cam.video} gives {size[0]}x{size[1]} frames ({cam.source_kind}, "
                  f"capture latency {cam.latency_s:g} s)")
        else:
            failed += 1
            print(f"  {cam.id}: FAILED: {problem}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `xrcell` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("GLOG_minloglevel", "2")  # quiet MediaPipe's C++ logging
    single_threaded_blas()      # every command's linear algebra is on tiny matrices (safety.blas)
    try:
        if args.command == "demo":
            from xr_server.demo import run_demo
            tls = None if args.headless else _server_tls(args)
            return run_demo(cell_path=args.cell, headless=args.headless, duration_s=args.duration,
                            report_path=args.report, host=args.host, port=args.port, db_url=args.db,
                            tls=tls)
        if args.command == "serve":
            from xr_server.serve import run_serve
            tls = _server_tls(args)
            return run_serve(cell_path=args.cell, robot=args.robot, host=args.host, port=args.port,
                             db_url=args.db, duration_s=args.duration, tls=tls)
        if args.command == "scenario":
            from xr_server.scenario import run_files
            return run_files(args.files, args.report)
        if args.command == "check-cell":
            from content.cell import load_cell
            cell = load_cell(args.file)
            depth = cell.perception.depth
            print(f"{args.file}: ok: cell {cell.name!r}, {len(cell.cameras)} cameras, robot {cell.robot.model}, "
                  f"{'no depth camera' if depth is None else 'depth camera ' + depth.source}")
            return _check_cameras(cell, args.timeout) if args.cameras else 0
        if args.command == "occupancy":
            from xr_server.occupancy_learn import run_learn, run_learn_from_depth
            if args.from_depth:
                if args.program is not None or args.rate is not None:
                    raise XrServerError("--program and --rate apply to learning in simulation, "
                                        "not --from-depth (the cell runs its own program at its "
                                        "depth camera's fps)")
                return run_learn_from_depth(args.cell, args.out, duration_s=args.duration_s,
                                            robot=args.robot, min_frames=args.min_frames)
            return run_learn(args.cell, args.out, args.program, rate_hz=args.rate or 10.0,
                             min_frames=args.min_frames)
        if args.command == "models":
            from safety.perception.models import install_pose_models
            install_pose_models()
            print("xrcell: MediaPipe pose models lite, full and heavy are installed")
            return 0
        if args.command == "audit":
            return _audit(args.action, args.db, args.n)
        if args.command == "users":
            from xr_server.users_cli import run_users
            return run_users(args)
        if args.command == "calibrate":
            from xr_server import calibrate
            return calibrate.run(args)
        if args.command == "track":
            from xr_server.track import parse_cam_map, run_track
            out = open(args.out, "w", encoding="utf-8") if args.out is not None else sys.stdout
            try:
                run_track(args.inputs, calib=args.calib, calib_format=args.calib_format,
                          cam_map=parse_cam_map(args.cam_map), out=out, show=args.show, rate_hz=args.rate,
                          duration_s=args.duration, resize=args.resize, model_complexity=args.model_complexity,
                          floor_z_m=args.floor_z)
            finally:
                if out is not sys.stdout:
                    out.close()
            return 0
        if args.command == "samples":
            from content.samples import fetch_pose2sim
            path = fetch_pose2sim()
            print(f"xrcell: sample footage in {path}")
            return 0
    except (ContentError, SafetyError, BridgeError, XrServerError) as exc:
        print(f"xrcell: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
