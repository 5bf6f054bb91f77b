"""What every browser test needs: Debian's Chromium launched headless (a .y4m as its fake camera
where the test needs one), the real server in a thread on 127.0.0.1 with the test's accounts and
the static Panda twin, and polling a page (the pages' Content-Security-Policy forbids the eval
that page.wait_for_function needs)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import argon2
import pytest

from content.cell import Pose
from content.storage import AnnotationStore, UserStore
from content.twin_asset import TwinAssetCache
from robot_bridge.sim.panda import panda_urdf_path
from xr_server.app import create_app, node_modules_dir
from xr_server.serving import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
#: The password of every account of the e2e servers but the dashboard tests' (``s3cret-pw``).
PASSWORD = "e2e-pw-0123456789"
SECRET = "e2e-secret-0123456789abcdef"


def require_chromium() -> None:
    """Fail (not skip) when Debian's chromium is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: run `make test` (it installs Debian's chromium)")


@contextmanager
def chromium(fake_camera: Path | None = None) -> Iterator[object]:
    """A launched headless Chromium (a Playwright `Browser`), closed on exit; with `fake_camera`
    (a .y4m file) it grants getUserMedia and plays that file as the camera."""
    from playwright.sync_api import sync_playwright

    args = list(CHROMIUM_ARGS)
    if fake_camera is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-video-capture={fake_camera}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@dataclass
class E2eServer:
    """The real XR server in a thread: its URL, its Flask app and (when asked for) its
    annotation store."""

    base: str
    app: Any
    annotations: AnnotationStore | None

    def stop(self) -> None:
        self.app.xrcell_stop()


def start_e2e_server(directory: Path, accounts: dict[str, list[str]], *, name: str,
                     password: str = PASSWORD, annotations: bool = False,
                     **inputs: Any) -> E2eServer:
    """Serve `create_app` on 127.0.0.1 in a thread named `name`, with the users of `accounts`
    (username -> roles, each with `password`; argon2 at its cheapest) in `directory`/xrcell.sqlite,
    the annotation store in the same database when `annotations`, and the static twin (the real
    Panda URDF and meshes, base at the origin: the pages load it, and log a 503 without it).
    `inputs` go to `create_app` (``twin_source``, ``camera_views``, ``cell_name``, ...).

    Fails (not skips) when the npm packages the pages load are missing."""
    if not (node_modules_dir() / "three" / "build" / "three.module.js").is_file():
        pytest.fail(f"npm packages missing in {node_modules_dir()}: "
                    "run `make test` (it runs `npm ci`)")
    db = f"sqlite:///{directory / 'xrcell.sqlite'}"
    store = UserStore(db, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))
    for username, roles in accounts.items():
        store.add(username, password, roles)
    annotation_store = AnnotationStore(db) if annotations else None
    twins = TwinAssetCache()
    app, socketio = create_app(user_store=store, secret_key=SECRET,
                               annotation_store=annotation_store,
                               twin_asset=lambda: twins.get(panda_urdf_path(), Pose(), []),
                               **inputs)
    return E2eServer(serve_in_thread(app, socketio, name=name), app, annotation_store)


def wait_until(page, expression: str, timeout_s: float):
    """Poll `expression` with page.evaluate every 100 ms until it is truthy; its value.

    Raises:
        AssertionError: still falsy after `timeout_s`, naming the expression.
    """
    deadline = time.monotonic() + timeout_s
    while not (value := page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {expression}")
        page.wait_for_timeout(100)
    return value


def signed_in_page(context, base: str, path: str, user: str, password: str = PASSWORD):
    """A new page of the browser context `context`, signed in as `user` through the login page
    and at `base` + `path`; `page.problems` collects its console errors, page errors and HTTP
    answers of 400 and above."""
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("response",
            lambda r: page.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{base}{path}")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-button")
    page.wait_for_url(f"{base}{path}")
    return page
