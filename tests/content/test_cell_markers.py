"""The cell file's fiducial markers (`markers`): validated, every error names the field."""

import math

import pytest
import yaml

from content.cell import load_cell
from content.errors import CellDescriptionError

MARKER = {"id": 7, "dictionary": "DICT_4X4_50", "size_m": 0.15,
          "pose": {"position": [1.0, -0.5, 0.0], "rpy": [math.pi, 0.0, 0.0]}}


def write(tmp_path, markers) -> object:
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump({"name": "lab", "markers": markers}))
    return path


def test_a_marker_is_read_with_its_pose(tmp_path):
    cell = load_cell(write(tmp_path, [MARKER, {**MARKER, "id": 8, "pose": {
        "position": [0, 0, 1], "quaternion": [0, 0, 0, 1]}}]))
    assert [m.id for m in cell.markers] == [7, 8]
    assert cell.markers[0].size_m == 0.15 and cell.markers[0].pose.rpy == (math.pi, 0.0, 0.0)
    assert cell.markers[1].pose.quaternion == (0, 0, 0, 1)


def test_no_markers_by_default(tmp_path):
    path = tmp_path / "cell.yaml"
    path.write_text("name: lab\n")
    assert load_cell(path).markers == []


@pytest.mark.parametrize("patch, match", [
    ({"dictionary": "DICT_9X9_50"}, r"cell.yaml: markers\[0\]: Value error, dictionary: unknown ArUco "
                                    r"dictionary 'DICT_9X9_50' \(known: DICT_4X4_50"),
    ({"id": 50}, r"markers\[0\]: Value error, id: DICT_4X4_50 holds ids 0 to 49, got 50"),
    ({"id": -1}, r"markers\[0\].id: Input should be greater than or equal to 0"),
    ({"size_m": 0}, r"markers\[0\].size_m: Input should be greater than 0"),
    ({"pose": {"position": [0, 0, 0]}}, r"markers\[0\].pose: Value error, give exactly one of quaternion"),
    ({"pose": {"position": [0, 0, 0], "quaternion": [0, 0, 0, 0]}},
     r"markers\[0\].pose: Value error, quaternion must not be zero"),
    ({"colour": "black"}, r"markers\[0\].colour: Extra inputs are not permitted"),
])
def test_a_bad_marker_is_refused_naming_the_field(tmp_path, patch, match):
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, [{**MARKER, **patch}]))


def test_a_marker_declared_twice_is_refused(tmp_path):
    with pytest.raises(CellDescriptionError,
                       match=r"markers: Value error, markers must be unique, repeated: DICT_4X4_50 id 7"):
        load_cell(write(tmp_path, [MARKER, MARKER]))
