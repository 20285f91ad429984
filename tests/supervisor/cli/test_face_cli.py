"""`supervisor verify` and `supervisor calibrate` on real faces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from supervisor.cli.main import main
from tests import imagegen


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_verify_prints_one_json_object_per_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _write(tmp_path / "ref.jpg", imagegen.jpeg_bytes(imagegen.grace_hopper()))
    same = _write(
        tmp_path / "same.jpg",
        imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170)),
    )
    other = _write(
        tmp_path / "other.jpg",
        imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.astronaut(), face_width=170)),
    )
    empty = _write(tmp_path / "empty.png", imagegen.png_bytes(imagegen.non_face_images()[2]))
    assert main(["verify", str(ref), str(same), str(other), str(empty)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["probe"] for line in lines] == [str(same), str(other), str(empty)]
    assert [line["verdict"] for line in lines] == ["match", "mismatch", "no_face"]
    assert lines[0]["distance"] < lines[0]["threshold"] < lines[1]["distance"]
    assert lines[2]["distance"] is None


def test_verify_reports_unreadable_probe_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _write(tmp_path / "ref.jpg", imagegen.jpeg_bytes(imagegen.grace_hopper()))
    bad = _write(tmp_path / "bad.jpg", b"not an image")
    assert main(["verify", str(ref), str(bad)]) == 1
    line = json.loads(capsys.readouterr().out.strip())
    assert line["verdict"] == "error" and "not a recognisable image" in line["error"]


def test_verify_refuses_a_reference_without_a_face(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _write(tmp_path / "ref.png", imagegen.png_bytes(imagegen.non_face_images()[0]))
    probe = _write(tmp_path / "p.jpg", imagegen.jpeg_bytes(imagegen.grace_hopper()))
    assert main(["verify", str(ref), str(probe)]) == 2
    assert "no face" in capsys.readouterr().err


def _dataset(root: Path, groups: bool = False) -> Path:
    rows = []
    for name, image in (("astronaut", imagegen.astronaut()), ("hopper", imagegen.grace_hopper())):
        for i, copy in enumerate([image, *imagegen.augmented_copies(image)[:3]]):
            rel = f"{name}/{i}.jpg"
            _write(root / rel, imagegen.jpeg_bytes(copy))
            rows.append((rel, name, "1"))
    notes = {"astronaut": "group=first; a note", "hopper": "group=second"} if groups else {}
    _write(root / "nonface/1.png", imagegen.png_bytes(imagegen.non_face_images()[1]))
    rows.append(("nonface/1.png", "nonface", "0"))
    _write(root / "broken/1.jpg", b"\xff\xd8\xff garbage")
    rows.append(("broken/1.jpg", "broken", "1"))
    _write(root / "blank/1.png", imagegen.png_bytes(imagegen.non_face_images()[3]))
    rows.append(("blank/1.png", "blank", "1"))
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "identity", "faces_expected", "notes"])
        for row in rows:
            writer.writerow([*row, notes.get(row[1], "")])
    return root


def test_calibrate_prints_a_rate_table_and_a_final_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "ds")
    code = main(["calibrate", "--dataset", str(dataset), "--jitters", "1", "--processes", "2"])
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    final = json.loads(lines[-1])
    # 2 identities x 4 images: ordered pairs of different images.
    assert final["genuine_pairs"] == 2 * 4 * 3
    assert final["impostor_pairs"] == 2 * 4 * 4
    assert final["fmr"] == 0.0 and final["fnmr"] == 0.0
    assert final["failed_to_encode"] == 2  # the broken file and the blank one
    # The configured engine's threshold, in its own units (SFace: 1 - cosine).
    assert final["engine"] == "sface" and final["threshold"] == 0.57
    assert final["groups"] == {}  # no group= notes in this manifest
    assert any("<- in force" in line for line in lines)
    assert any(line.startswith("recommended threshold") for line in lines)
    assert "encoding" in captured.err  # the progress bar


def test_calibrate_reports_each_group_and_another_engine_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "ds", groups=True)
    args = ["calibrate", "--dataset", str(dataset), "--jitters", "1", "--target-fmr", "0.01"]
    assert main([*args, "--engine", "dlib"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    final = json.loads(out[-1])
    assert final["engine"] == "dlib" and final["threshold"] == 0.53
    groups = final["groups"]
    # Each group holds one identity here: 4 x 3 genuine pairs and no impostor pair of
    # its own; the impostor pairs are all across the two groups.
    assert set(groups) == {"first", "second", "cross-group"}
    assert groups["first"]["genuine_pairs"] == 12 and groups["first"]["impostor_pairs"] == 0
    assert groups["cross-group"]["impostor_pairs"] == 2 * 4 * 4
    assert groups["cross-group"]["false_matches"] == 0
    assert groups["first"]["fnmr_at_target_fmr"] is None  # no impostors to hold to a rate
    assert final["target_fmr"] == 0.01 and final["fnmr_at_target_fmr"] == 0.0
    assert any(line.strip().startswith("cross-group") for line in out)
    assert any(line.startswith("FNMR at a false match rate") for line in out)


def test_calibrate_threshold_option_is_the_one_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "ds")
    assert (
        main(["calibrate", "--dataset", str(dataset), "--jitters", "1", "--threshold", "0.001"])
        == 0
    )
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["threshold"] == 0.001
    assert final["fnmr"] > 0.5  # nearly every genuine pair fails at such a strict threshold


def test_calibrate_refuses_a_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="manifest.csv not found"):
        main(["calibrate", "--dataset", str(tmp_path)])
