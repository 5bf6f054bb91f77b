"""Annotation store: committed on return, changed only by the author, every error message pinned."""

import sqlite3
import threading

import pytest

from content.errors import StorageError
from content.storage import AnnotationStore

SESSION = "0123456789abcdef"


@pytest.fixture
def path(tmp_path):
    return tmp_path / "xrcell.sqlite"


@pytest.fixture
def store(path):
    return AnnotationStore(f"sqlite:///{path}")


def test_an_added_annotation_is_committed_when_add_returns(store, path):
    added = store.add(SESSION, "lab", "eve", "arrow", [[0.1, 0.2], [0.3, 0.4]], None, "loosen", "#ff0000")
    with sqlite3.connect(path) as db:  # another connection, as after a crash of this process
        rows = db.execute("SELECT id, session_id, author, kind, points, text FROM annotations").fetchall()
    assert rows == [(added.annotation_id, SESSION, "eve", "arrow", "[[0.1, 0.2], [0.3, 0.4]]", "loosen")]
    assert added.points == ((0.1, 0.2), (0.3, 0.4)) and added.created_at == added.updated_at


def test_list_is_per_session_in_order(store):
    first = store.add(SESSION, "lab", "eve", "label", [[0.5, 0.5]], None, "a", "#ffcc00")
    store.add("fedcba9876543210", "lab", "eve", "label", [[0.5, 0.5]], None, "other", "#ffcc00")
    second = store.add(SESSION, "lab", "sam", "circle", [[0.5, 0.5]], 0.1, "", "#ffcc00")
    assert [a.annotation_id for a in store.list(SESSION)] == [first.annotation_id, second.annotation_id]


def test_only_the_author_updates_or_removes(store):
    mark = store.add(SESSION, "lab", "eve", "circle", [[0.5, 0.5]], 0.1, "", "#ffcc00")
    with pytest.raises(StorageError, match=rf"^annotation {mark.annotation_id} was placed by 'eve': "
                                           "only its author may change it$"):
        store.update(mark.annotation_id, SESSION, "sam", radius=0.3)
    with pytest.raises(StorageError, match=rf"^annotation {mark.annotation_id} was placed by 'eve': "
                                           "only its author may delete it$"):
        store.remove(mark.annotation_id, SESSION, "sam")
    updated = store.update(mark.annotation_id, SESSION, "eve", radius=0.3, text="here")
    assert (updated.radius, updated.text, updated.points) == (0.3, "here", ((0.5, 0.5),))
    store.remove(mark.annotation_id, SESSION, "eve")
    assert store.list(SESSION) == []


def test_an_annotation_of_another_session_is_not_found(store):
    mark = store.add(SESSION, "lab", "eve", "label", [[0.5, 0.5]], None, "x", "#ffcc00")
    with pytest.raises(StorageError, match=rf"^no annotation {mark.annotation_id} in session fedcba9876543210$"):
        store.update(mark.annotation_id, "fedcba9876543210", "eve", text="y")
    with pytest.raises(StorageError, match=f"^no annotation 999 in session {SESSION}$"):
        store.remove(999, SESSION, "eve")
    with pytest.raises(StorageError, match="^unknown annotation kind 'star': expected one of arrow, circle, label, stroke$"):
        store.add(SESSION, "lab", "eve", "star", [[0.5, 0.5]], None, "", "#ffcc00")


def test_a_failing_database_is_reported_without_its_internals(store, path, caplog):
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE annotations")
    for call, verb in ((lambda: store.add(SESSION, "lab", "eve", "label", [[0.5, 0.5]], None, "x", "#ffcc00"),
                        "add annotation"),
                       (lambda: store.update(1, SESSION, "eve", text="y"), "update annotation"),
                       (lambda: store.remove(1, SESSION, "eve"), "delete annotation"),
                       (lambda: store.list(SESSION), "read annotations")):
        with pytest.raises(StorageError, match=f"^cannot {verb}: database unavailable$"):
            call()
    assert "no such table: annotations" in caplog.text  # the cause goes to the log


def test_concurrent_adds_from_threads_all_land(store):
    def add(i):
        store.add(SESSION, "lab", "eve", "label", [[0.5, 0.5]], None, f"t{i}", "#ffcc00")
    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.text for a in store.list(SESSION)) == sorted(f"t{i}" for i in range(8))


def test_an_anchor_keeps_what_it_lies_on_and_old_rows_read_as_floor(store, path):
    on_link = store.add(SESSION, "lab", "eve", "circle", [[0.5, 0.5]], 0.05, "", "#ff0000",
                        (1.0, -0.5, 1.1), "robot:panda_link3")
    assert on_link.anchor_m == (1.0, -0.5, 1.1) and on_link.anchor_on == "robot:panda_link3"
    old = store.add(SESSION, "lab", "eve", "label", [[0.2, 0.2]], None, "here", "#ff0000")
    with sqlite3.connect(path) as db:    # a row written before anchors said what they lie on
        db.execute("UPDATE annotations SET anchor = '[2.0, 3.0, 0.0]' WHERE id = ?", (old.annotation_id,))
    (_, legacy) = store.list(SESSION)
    assert legacy.anchor_m == (2.0, 3.0, 0.0) and legacy.anchor_on == "floor"
    assert store.list(SESSION)[0].anchor_on == "robot:panda_link3"
