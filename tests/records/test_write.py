"""The writer module: atomic files, JSON/CSV/NPZ content, writability checks, provenance."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from advgrad.records import write as results


def test_json_csv_npz_round_trip(tmp_path: Path) -> None:
    results.write_json(tmp_path / "a" / "r.json", {"eps": np.float32(0.25), "n": np.int64(3), "p": Path("x")})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"eps": 0.25, "n": 3, "p": "x"}
    results.write_csv(tmp_path / "r.csv", [{"attack": "pgd", "eps": 0.1}, {"attack": "fgsm", "eps": 0.2}])
    with open(tmp_path / "r.csv") as f:
        assert list(csv.DictReader(f)) == [{"attack": "pgd", "eps": "0.1"}, {"attack": "fgsm", "eps": "0.2"}]
    results.write_npz(tmp_path / "x.npz", x=np.arange(4))
    with np.load(tmp_path / "x.npz") as d:
        assert d["x"].tolist() == [0, 1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == ["a", "r.csv", "x.npz"]
    # Files get the permissions the umask allows, like open() would give, not mkstemp's 0600.
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o666 & ~mask


def test_check_writable(tmp_path: Path) -> None:
    assert results.check_writable(tmp_path / "new" / "deeper" / "f.json") == tmp_path / "new" / "deeper" / "f.json"
    with pytest.raises(ValueError, match="is a directory"):
        results.check_writable(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not writable"):
        results.check_writable(tmp_path / "file" / "below.json")  # a file is in the way


def test_provenance_names_command_versions_and_model_hash(tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    model.write_bytes(b"abc")
    record = results.provenance(seed=3, model_path=model, argv=["/usr/bin/advgrad", "attack", "--eps", "0.1"])
    assert record["command"] == "advgrad attack --eps 0.1" and record["seed"] == 3
    # sha256("abc"), a published test vector (FIPS 180-2).
    assert record["model_sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert {"advgrad_version", "torch_version", "machine", "created"} <= set(record)


def test_a_rewrite_sweeps_temporary_files_left_by_a_killed_writer(tmp_path: Path) -> None:
    (tmp_path / ".r.json.abc123.tmp").write_bytes(b'{"half": ')  # what kill -9 mid-write leaves
    (tmp_path / ".other.json.x.tmp").write_bytes(b"")  # another target's: not ours to touch
    results.write_json(tmp_path / "r.json", {"ok": True})
    assert sorted(os.listdir(tmp_path)) == [".other.json.x.tmp", "r.json"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("path", ["/proc/advgrad/model.pt", "/proc/model.pt"])
def test_check_writable_proves_it_by_writing(path: str) -> None:
    """os.access says /proc is writable (to root it is, in mode bits), yet nothing can be created there:
    only an actual file created and removed is proof."""
    with pytest.raises(ValueError, match=f"output path '{path}' is not writable"):
        results.check_writable(path)
    assert not Path("/proc/advgrad").exists()


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.json"
    assert results.check_writable(target) == target
    assert list(tmp_path.iterdir()) == []  # the folders it made to prove it are gone again
    (tmp_path / "keep").mkdir()
    results.check_writable(tmp_path / "keep" / "x.json")
    assert [p.name for p in tmp_path.rglob("*")] == ["keep"]  # an existing folder stays, empty


def test_check_writable_refuses_files_in_the_way_devices_and_bad_names(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"is not writable \('.*file' is a file, not a folder\)"):
        results.check_writable(tmp_path / "file" / "deeper" / "x.json")
    with pytest.raises(ValueError, match="exists and is not a regular file"):
        results.check_writable("/dev/null")  # os.replace would swap the device for a file
    with pytest.raises(ValueError, match="not a usable file name"):
        results.check_writable(tmp_path / "a\0b.json")
    with pytest.raises(ValueError, match="not writable"):
        results.check_writable(tmp_path / ("x" * 300 + ".json"))  # longer than a file name may be
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_json_takes_numpy_scalars_of_every_kind(tmp_path: Path) -> None:
    text = results.to_json({"b": np.bool_(True), "f": np.float16(0.5), "i": np.uint8(7)})
    assert json.loads(text) == {"b": True, "f": 0.5, "i": 7}
