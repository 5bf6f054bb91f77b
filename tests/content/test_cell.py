"""Cell description validation: every error names the file and the field."""

from pathlib import Path

import pytest
import yaml

from content.cell import load_cell
from content.errors import CellDescriptionError

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "lab",
    "robot": {"base": {"position": [1.0, 0.5, 0.0], "yaw_deg": 90}},
    "cameras": [{"id": "cam01", "video": "videos/cam01.mp4",
                 "calibration": {"file": "calib/Calib.qca.txt", "camera": "cam01"}}],
}


def write(tmp_path, data, name="cell.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_cell_resolves_paths_against_its_folder(tmp_path):
    cell = load_cell(write(tmp_path, GOOD))
    assert cell.name == "lab" and cell.robot.base.yaw_deg == 90
    assert cell.cameras[0].video == (tmp_path / "videos/cam01.mp4").resolve()
    assert cell.cameras[0].calibration.file == (tmp_path / "calib/Calib.qca.txt").resolve()
    assert cell.safety.human_speed_mps == 1.6  # ISO 13855 default


def test_demo_cell_is_valid():
    cell = load_cell(REPO / "launch" / "cells" / "demo.yaml")
    assert len(cell.cameras) == 4 and cell.program is not None


@pytest.mark.parametrize("patch, match", [
    ({"safety": {"human_speed_mps": 0}}, r"cell.yaml: safety.human_speed_mps: Input should be greater than 0"),
    ({"safety": {"rate_hz": 10}}, r"cell.yaml: safety.rate_hz: Input should be greater than or equal to 50"),
    ({"robot": {"stop": {"category": 3}}}, r"cell.yaml: robot.stop.category: Input should be 0, 1 or 2"),
    ({"robot": {"max_tcp_speed_mps": "fast"}}, r"cell.yaml: robot.max_tcp_speed_mps: Input should be a valid number"),
    ({"cameras": [{"id": "cam 1", "video": "v.mp4", "calibration": {"file": "c", "camera": "c"}}]},
     r"cell.yaml: cameras\[0\].id: String should match pattern"),
    ({"cameras": [{"id": "c1", "calibration": {"file": "c", "camera": "c"}}]}, r"cell.yaml: cameras\[0\].video: Field required"),
    ({"safety": {"human_sped_mps": 2.0}}, r"cell.yaml: safety.human_sped_mps: Extra inputs are not permitted"),
    ({"cameras": [GOOD["cameras"][0], GOOD["cameras"][0]]}, r"cell.yaml: cameras: Value error, camera ids must be unique, repeated: cam01"),
])
def test_invalid_field_is_named(tmp_path, patch, match):
    data = {**GOOD, **patch}
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, data))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(CellDescriptionError, match=r"nope.yaml: cannot read cell description"):
        load_cell(tmp_path / "nope.yaml")
    with pytest.raises(CellDescriptionError, match=r"bad.yaml: not valid YAML"):
        load_cell(write(tmp_path, "name: [unclosed", "bad.yaml"))
    with pytest.raises(CellDescriptionError, match=r"list.yaml: the cell description must be a mapping, got list"):
        load_cell(write(tmp_path, "- a\n- b\n", "list.yaml"))
