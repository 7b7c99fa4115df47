"""A fuzz test of the whole CLI (hypothesis): every command with valid and invalid option values, options
missing, repeated or unknown, paths that exist, do not exist, are folders, lie under a file or in /proc,
and input files that are truncated, byte-flipped or structurally wrong (checkpoints, the JSON and npz
records `plot` reads, the eval JSON). Whatever happens:

- the exit status is 0, 1 or 2, and 1 only as the one-line internal error with its traceback file (none
  is expected: each one found so far was a bug, fixed);
- no traceback reaches stdout or stderr; a failure is one ``Error:`` line (after ``warning:`` lines);
- nothing is half-written: no temporary file is left, a failed command creates or changes no file, and
  every file a command wrote parses completely;
- no file of the repository is touched.

Many cases in-process through CliRunner (each property twice: a short run of the strategy and a long one\nof the same strategy, 150 and 200 examples), a few in real processes (``python -m advgrad``)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.cli import ROOT, invoke, run, run_many, stopped_run, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advgrad.models.checkpoint import load_checkpoint

INPUTS = ["m.pt", "m.json", "a.json", "ex.npz", "e.json", "e.csv", "bad.pt", "bad.json", "bad.npz", "missing.pt",
          "adir", "blocker/x.pt", "", "link.pt"]
OUTPUTS = ["out/r.json", "r.json", "out/f.png", "f.svg", "f.pdf", "x.pt", "x.npz", "runs/x.txt", "adir",
           "blocker/o.json", "/proc/advgrad/o.json", "/proc/o.png", "m.pt", "e.json", "bad.json", "ex.npz", "a.json",
           "noext", "", "out/../r2.json", "link.pt", "m.best.pt"]
FLOATS = ["0.1", "0", "-0.1", "nan", "inf", "1e-9", "abc", "2", "0.3"]


# --- the files a workspace starts with --------------------------------------------------------------

@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Valid inputs, made by the CLI itself: a checkpoint and its metrics, an attack record and its
    examples, an eval record (with minimal ε) and its CSV, and p.pt: a run of 2 epochs stopped after the
    first (as Ctrl-C leaves it), for `train --resume`."""
    folder = tmp_path_factory.mktemp("originals")
    steps = [
        ["train", "--model", "logreg", "--epochs", "1", "--n-train", "100", "--quiet", "--out", f"{folder}/m.pt"],
        ["attack", "--model", f"{folder}/m.pt", "--eps", "0.1", "--n", "10", "--out", f"{folder}/a.json",
         "--save-examples", f"{folder}/ex.npz"],
        ["eval", "--model", f"{folder}/m.pt", "--n", "10", "--eps", "0,0.1", "--steps", "1", "--queries", "3",
         "--min-eps", "--precision", "0.05", "--out", f"{folder}/e.json"],
    ]
    for args in steps:
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    result = stopped_run(["--model", "logreg", "--epochs", "2", "--n-train", "100", "--quiet",
                          "--out", f"{folder}/p.pt"])
    assert result.exit_code == 130 and torch.load(folder / "p.pt", weights_only=True)["resume"]["epoch"] == 1
    return tree(folder)


@pytest.fixture(scope="module")
def repository() -> Iterator[None]:
    """The repository's files (git's view, and the bytes of results/) are the same after the fuzzing."""
    def state() -> tuple[str, dict[str, bytes]]:
        if (ROOT / ".git").exists():
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout
            return status, tree(ROOT / "results") if (ROOT / "results").is_dir() else {}
        # Not a git checkout (an unpacked source archive): the bytes of the package, scripts and results.
        return "", {f"{d}/{k}": v for d in ("advgrad", "scripts", "results") if (ROOT / d).is_dir()
                    for k, v in tree(ROOT / d).items() if "__pycache__" not in k}

    before = state()
    yield
    assert state() == before, "the fuzzed commands changed files of the repository"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the workspaces and the internal-error tracebacks go (tempfile.gettempdir())."""
    folder = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(folder))
        yield folder


# --- corrupting files --------------------------------------------------------------------------------

JSON_VALUES = st.sampled_from([None, 0, -1, 1e308, "x", "", [], {}, [1, "a"], {"a": 1}, True, -0.5, [[0.1]]])


def mutate_tree(data: st.DataObject, obj: Any) -> Any:
    """Replace or delete one randomly chosen entry somewhere inside a JSON-like value."""
    if isinstance(obj, dict) and obj and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(obj, key=str)))
        if data.draw(st.integers(0, 3)) == 0:
            return {k: v for k, v in obj.items() if k != key}
        return {**obj, key: mutate_tree(data, obj[key])}
    if isinstance(obj, list) and obj and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(obj) - 1))
        return [*obj[:i], mutate_tree(data, obj[i]), *obj[i + 1:]]
    return data.draw(JSON_VALUES)


def corrupt_bytes(data: st.DataObject, raw: bytes) -> bytes:
    how = data.draw(st.sampled_from(["truncate", "flip", "empty", "random"]))
    if how == "truncate":
        return raw[:data.draw(st.integers(0, len(raw) - 1))]
    if how == "flip":
        out = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4))):
            out[data.draw(st.integers(0, len(out) - 1))] ^= data.draw(st.integers(1, 255))
        return bytes(out)
    if how == "empty":
        return b""
    return data.draw(st.binary(min_size=1, max_size=300))


def corrupt_checkpoint(data: st.DataObject, raw: bytes) -> bytes:
    if data.draw(st.booleans()):
        return corrupt_bytes(data, raw)
    payload = torch.load(io.BytesIO(raw), weights_only=True)
    part = data.draw(st.sampled_from(["meta", "weights", "header", "resume"]))
    if part in ("meta", "resume"):  # resume: the optimizer and RNG states `train --resume` continues from
        payload[part] = mutate_tree(data, payload[part])
    elif part == "weights":
        key = data.draw(st.sampled_from(sorted(payload["state_dict"])))
        payload["state_dict"][key] = data.draw(st.sampled_from([
            torch.zeros(3), torch.full_like(payload["state_dict"][key], float("nan")),
            payload["state_dict"][key].to(torch.int64), torch.zeros(0)]))
    else:
        payload[data.draw(st.sampled_from(["format", "format_version"]))] = data.draw(JSON_VALUES)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def corrupt_json(data: st.DataObject, raw: bytes) -> bytes:
    if data.draw(st.booleans()):
        return corrupt_bytes(data, raw)
    return json.dumps(mutate_tree(data, json.loads(raw))).encode()


def corrupt_npz(data: st.DataObject, raw: bytes) -> bytes:
    if data.draw(st.booleans()):
        return corrupt_bytes(data, raw)
    with np.load(io.BytesIO(raw)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = data.draw(st.sampled_from(sorted(k for k in arrays if k != "meta")))  # the per-example arrays
    change = data.draw(st.sampled_from(["drop", "shape", "dtype", "short", "strings", "empty", "nan"]))
    a = arrays.pop(key)
    if change != "drop":
        arrays[key] = {"shape": lambda: a.reshape(-1), "dtype": lambda: a.astype(np.complex64),
                       "short": lambda: a[:1], "strings": lambda: np.array(["x"] * len(a)),
                       "empty": lambda: a[:0], "nan": lambda: np.full(a.shape, np.nan)}[change]()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def workspace(sandbox: Path, originals: dict[str, bytes], data: st.DataObject) -> Path:
    """A fresh folder with the valid inputs, one corrupted file of each kind, a folder, a file in the way
    and a symlink (to the checkpoint or to nothing)."""
    folder = Path(tempfile.mkdtemp(dir=sandbox))
    for name, raw in originals.items():
        (folder / name).write_bytes(raw)
    (folder / "bad.pt").write_bytes(corrupt_checkpoint(data, originals["m.pt"]))
    (folder / "bad.json").write_bytes(corrupt_json(data, originals[data.draw(st.sampled_from(["m.json", "a.json",
                                                                                              "e.json"]))]))
    (folder / "bad.npz").write_bytes(corrupt_npz(data, originals["ex.npz"]))
    (folder / "adir").mkdir()
    (folder / "blocker").write_text("a file, not a folder")
    os.symlink(data.draw(st.sampled_from(["m.pt", "gone.pt"])), folder / "link.pt")
    return folder


# --- command lines -----------------------------------------------------------------------------------

# (option, plausible values, bad values); a flag has neither. Plausible values come first and are drawn
# five times in six: hypothesis starts from, and shrinks towards, the first of them, so most command lines
# get past the option checks to the files.
Option = tuple[str, list[str], list[str]]
FLAG: tuple[list[str], list[str]] = ([], [])


def value(data: st.DataObject, good: list[str], bad: list[str]) -> str:
    return data.draw(st.sampled_from(bad if bad and data.draw(st.integers(0, 5)) == 5 else good))


def pick(data: st.DataObject, always: list[Option], required: list[Option], optional: list[Option]) -> list[str]:
    """The options that keep a run small (always given, though their values may be bad), the required
    ones (each dropped now and then), and a random subset of the optional ones, in a random order."""
    chosen = list(always) + [o for o in required if data.draw(st.integers(0, 9)) < 9]
    chosen += [o for o in optional if data.draw(st.integers(0, 2)) == 2]
    args: list[str] = []
    for option, good, bad in data.draw(st.permutations(chosen)):
        args += [option] if (good, bad) == FLAG else [option, value(data, good, bad)]
    return args


def command_line(data: st.DataObject) -> list[str]:
    name = data.draw(st.sampled_from(["attack", "eval", "plot", "train", "grad", "info"]))
    common: list[Option] = [("--seed", ["0", "3"], ["-1", "x"]), ("--data-root", ["adir"], INPUTS)]
    model: Option = ("--model", ["m.pt", "bad.pt", "link.pt"], INPUTS)
    if name == "train":
        args = pick(data, [("--epochs", ["1"], ["0", "x"]), ("--n-train", ["40"], ["0", "-3"]),
                           ("--model", ["logreg", "mlp-sigmoid"], ["vgg"])],
                    [("--out", ["x.pt", "out/y.pt", "m.pt", "out/../z.pt", "link.pt"], OUTPUTS)],
                    [("--batch-size", ["16"], ["0", "x"]), ("--lr", ["0.01"], FLOATS),
                     ("--schedule", ["constant", "cosine"], ["x"]), ("--optimizer", ["sgd", "adam"], ["x"]),
                     ("--loss", ["ce", "mse"], ["hinge"]), ("--hidden", ["8"], ["8,a", "0"]),
                     ("--head", ["softmax", "sigmoid"], []), ("--adv", ["fgsm", "fgsm-rs", "pgd", "trades"], ["x"]),
                     ("--eps", ["0.1", "0.3"], FLOATS), ("--adv-steps", ["1", "2"], ["0"]),
                     ("--adv-alpha", ["0.05"], FLOATS),
                     ("--beta", ["1"], FLOATS), ("--eps-warmup", ["1"], ["-1"]), ("--probe-n", ["4"], ["0"]),
                     ("--probe-steps", ["1"], ["0"]), ("--resume", *FLAG), ("--quiet", *FLAG),
                     ("--device", ["cpu", "auto"], ["cuda", "tpu"]),
                     ("--dataset", ["mnist-5k"], ["mnist", "cifar10", "svhn"]),
                     *common])
    elif name == "attack":
        args = pick(data, [("--n", ["5", "1"], ["0", "x"])], [("--eps", ["0.1", "0", "2"], FLOATS), model],
                    [("--method", ["fgsm", "pgd"], ["nope"]), ("--norm", ["inf", "2", "1"], ["3"]),
                     ("--steps", ["1", "2"], ["0"]), ("--alpha", ["0.05"], FLOATS), ("--restarts", ["1", "2"], ["0"]),
                     ("--no-random-start", *FLAG), ("--targeted", *FLAG), ("--target-class", ["0", "3"], ["12", "-1"]),
                     ("--target", ["random"], ["x"]), ("--loss", ["ce", "mse", "margin"], ["x"]),
                     ("--block", ["3"], ["0"]), ("--out", ["r.json", "out/r.json", "a.json"], OUTPUTS),
                     ("--save-examples", ["x.npz", "out/x.npz", "ex.npz"], OUTPUTS), ("--json", *FLAG),
                     ("--device", ["cpu"], ["cuda"]), *common])
    elif name == "eval":
        args = pick(data, [("--n", ["6"], ["0", "x"]), ("--steps", ["1"], ["0"]), ("--queries", ["3"], ["0"])], [model],
                    [("--eps", ["0,0.1", "0.1", "0"], ["-1", "a", "", "nan"]),
                     ("--attacks", ["fgsm", "pgd", "fgsm,pgd"], ["nope", ""]), ("--restarts", ["1", "2"], ["0"]),
                     ("--block", ["4"], ["0"]), ("--min-eps", *FLAG),
                     ("--min-eps-attack", ["pgd", "fgsm"], ["square", "x"]),
                     ("--precision", ["0.1", "0.01"], ["0", "-1"]),
                     ("--no-sanity", *FLAG), ("--out", ["r.json", "out/e2.json", "e.json"], OUTPUTS),
                     ("--device", ["cpu"], ["cuda"]), *common])
    elif name == "grad":
        args = pick(data, [("--fd-coords", ["1", "0"], ["-1"])], [],
                    [model, ("--random-sigmoid", ["784,8,10"], ["784,x", "784", "785,8,10"]),
                     ("--index", ["0", "3"], ["-1", "1000", "x"]), ("--index", ["7"], []),
                     ("--loss", ["mse", "ce"], ["margin"]), ("--eps", ["0.1"], FLOATS),
                     ("--plot", ["f.png", "out/f.svg", "f.pdf"], OUTPUTS), *common])
    elif name == "plot":
        kind = data.draw(st.sampled_from(["examples", "curve", "training", "min-eps", "landscape", "bogus"]))
        good = {"examples": ["ex.npz", "bad.npz"], "curve": ["e.json", "a.json", "bad.json"],
                "training": ["m.json", "bad.json"], "min-eps": ["e.json", "bad.json"],
                "landscape": ["m.pt", "bad.pt", "link.pt"], "bogus": ["e.json"]}[kind]
        files = data.draw(st.lists(st.sampled_from(good if data.draw(st.integers(0, 5)) < 5 else INPUTS),
                                   min_size=0 if data.draw(st.integers(0, 9)) == 9 else 1, max_size=2))
        args = [kind, *files] + pick(data, [], [("--out", ["f.png", "f.svg", "out/f.pdf"], OUTPUTS)],
                                     [("--title", ["t"], [""]), ("--n", ["1", "2"], ["0", "x"]),
                                      ("--eps-max", ["0.1"], ["0", "inf", "nan"]), *common])
    else:
        args = pick(data, [], [], [model, ("--json", *FLAG)])
    tail = data.draw(st.integers(0, 9))
    if tail == 9:
        args.append("--bogus")
    elif tail == 8:
        args.append("extra")
    elif tail == 7 and args:
        args = args[:-1]  # an option left without its value, or a value without its option
    return [name, *args]


# --- what must hold after any command -----------------------------------------------------------------

def parses(path: Path) -> None:
    """The whole file is what its suffix says (a half-written file fails here)."""
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    if suffix == ".json":
        json.loads(raw)
    elif suffix == ".csv":
        rows = list(csv.reader(io.StringIO(raw.decode())))
        assert rows and all(len(r) == len(rows[0]) for r in rows)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            assert all(npz[k].size >= 0 for k in npz.files) and npz.files
    elif suffix == ".pt":
        load_checkpoint(path)
    elif suffix == ".png":
        assert raw.startswith(b"\x89PNG\r\n\x1a\n") and raw.endswith(b"IEND\xaeB`\x82")
    elif suffix == ".svg":
        ET.fromstring(raw)
    elif suffix == ".pdf":
        assert raw.startswith(b"%PDF") and raw.rstrip().endswith(b"%%EOF")
    else:
        raise AssertionError(f"unexpected output {path.name}")


INTERNAL = re.compile(r"^Error: internal error: .+ \(traceback saved in .+\)$")


def check_outcome(code: int, stdout: str, stderr: str, before: dict[str, bytes], folder: Path) -> None:
    assert code in (0, 1, 2), (code, stderr)
    assert "Traceback" not in stdout and "Traceback" not in stderr, stderr
    lines = stderr.strip("\n").splitlines()
    if code != 0:
        errors = [line for line in lines if line.startswith("Error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], stderr
        assert all(line.startswith(("warning: ", "--resume: ")) for line in lines[:-1]), stderr
        if code == 1:
            assert INTERNAL.match(errors[0]), errors[0]
            raise AssertionError(f"internal error (a bug): {errors[0]}")
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")], "temporary file left behind"
    after = tree(folder)
    changed = sorted(k for k in after if before.get(k) != after[k])
    if code != 0:
        assert changed == [] and set(after) == set(before), f"a failed command wrote {changed}"
    for name in changed:
        parses(folder / name)
    assert not Path("/proc/advgrad").exists()


def trace(args: list[str], code: int, stderr: str) -> None:
    """With FUZZ_DEBUG=1 in the environment (and pytest -s): each command line, its exit status and the
    end of its stderr, to see what the fuzzing reaches."""
    if os.environ.get("FUZZ_DEBUG"):
        print(f"{code} {args} {stderr.strip()[-200:]!r}", file=sys.__stderr__, flush=True)


def in_folder(folder: Path, call: Callable[[], Any]) -> Any:
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return call()
    finally:
        os.chdir(cwd)


FUZZ = settings(deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@pytest.mark.slow
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_fuzz_cli_in_process(originals: dict[str, bytes], sandbox: Path, repository: None, data: st.DataObject) -> None:
    folder = workspace(sandbox, originals, data)
    args = command_line(data)
    before = tree(folder)
    result = in_folder(folder, lambda: invoke(*args))
    trace(args, result.exit_code, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    check_outcome(result.exit_code, result.stdout, result.stderr, before, folder)


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_fuzz_cli_in_process_long(originals: dict[str, bytes], sandbox: Path, repository: None,
                                  data: st.DataObject) -> None:
    test_fuzz_cli_in_process.hypothesis.inner_test(originals, sandbox, repository, data)  # type: ignore[attr-defined]


@pytest.mark.slow
@settings(FUZZ, max_examples=3)
@given(data=st.data())
def test_fuzz_cli_real_processes(originals: dict[str, bytes], sandbox: Path, repository: None,
                                 data: st.DataObject) -> None:
    folder = workspace(sandbox, originals, data)
    args = command_line(data)
    before = tree(folder)
    proc = run(args, cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(sandbox),
                                      "PYTHONWARNINGS": "ignore"})
    check_outcome(proc.returncode, proc.stdout, proc.stderr, before, folder)


# Commands that read each kind of input file, with options that let them get as far as reading it.
READERS = {
    "bad.pt": [["info", "--model", "bad.pt"], ["info", "--model", "bad.pt", "--json"],
               ["attack", "--model", "bad.pt", "--eps", "0.1", "--n", "3", "--out", "r.json",
                "--save-examples", "x.npz"],
               ["eval", "--model", "bad.pt", "--n", "4", "--steps", "1", "--queries", "2", "--eps", "0,0.1",
                "--min-eps", "--precision", "0.1", "--out", "r.json"],
               ["grad", "--model", "bad.pt", "--fd-coords", "1", "--plot", "f.png"],
               ["plot", "landscape", "bad.pt", "--n", "1", "--out", "f.png"],
               ["train", "--model", "logreg", "--epochs", "2", "--n-train", "100", "--quiet", "--out", "bad.pt",
                "--resume"]],
    "bad.json": [["plot", "training", "bad.json", "--out", "f.png"], ["plot", "curve", "bad.json", "--out", "f.svg"],
                 ["plot", "min-eps", "bad.json", "--out", "f.pdf"],
                 ["plot", "curve", "e.json", "bad.json", "--out", "f.png"]],
    "bad.npz": [["plot", "examples", "bad.npz", "--out", "f.png", "--n", "3"]],
}


@pytest.mark.slow
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_fuzz_corrupted_inputs(originals: dict[str, bytes], sandbox: Path, repository: None,
                               data: st.DataObject) -> None:
    """Every reader of checkpoints, JSON and npz records, fed a damaged file (truncated, bytes flipped,
    or well-formed with a wrong structure: keys missing, values of other types, weights of other shapes,
    a broken resume state)."""
    folder = workspace(sandbox, originals, data)
    kind = data.draw(st.sampled_from(sorted(READERS)))
    if kind == "bad.json":  # the JSON record the reader expects, damaged
        reader = data.draw(st.sampled_from(READERS[kind]))
        source = {"training": "m.json", "min-eps": "e.json"}.get(reader[1], data.draw(st.sampled_from(["e.json",
                                                                                                     "a.json"])))
        (folder / "bad.json").write_bytes(corrupt_json(data, originals[source]))
    else:
        reader = data.draw(st.sampled_from(READERS[kind]))
        if reader[0] == "train":  # a damaged checkpoint of the stopped run, to be resumed
            (folder / "bad.pt").write_bytes(corrupt_checkpoint(data, originals["p.pt"]))
    before = tree(folder)
    result = in_folder(folder, lambda: invoke(*reader))
    trace(reader, result.exit_code, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), (reader, result.exception)
    check_outcome(result.exit_code, result.stdout, result.stderr, before, folder)


@pytest.mark.slow
@pytest.mark.heavy
@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_fuzz_corrupted_inputs_long(originals: dict[str, bytes], sandbox: Path, repository: None,
                                    data: st.DataObject) -> None:
    test_fuzz_corrupted_inputs.hypothesis.inner_test(originals, sandbox, repository, data)  # type: ignore[attr-defined]


def _meta_without_dataset(raw: bytes) -> bytes:
    payload = torch.load(io.BytesIO(raw), weights_only=True)
    del payload["meta"]["dataset"]
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


CUT_SHORT = [  # (command line, damage to bad.pt)
    (["info", "--model", "bad.pt"], "cut"),
    (["info", "--model", "bad.pt"], "meta"),
    (["plot", "curve", "bad.json", "--out", "c.png"], "cut"),
    (["plot", "examples", "bad.npz", "--out", "x.png"], "cut"),
    (["attack", "--model", "bad.pt", "--eps", "0.1", "--n", "3", "--out", "r.json"], "cut"),
]


@pytest.mark.slow
def test_corrupted_inputs_in_real_processes(originals: dict[str, bytes], sandbox: Path, repository: None) -> None:
    """Truncated files (the commonest damage: a copy cut short), and a checkpoint without its data set
    block, through a real process: the five command lines one after the other in one process
    (run_many), each in a folder of its own."""
    folders, befores = [], []
    for _, damage in CUT_SHORT:
        folder = Path(tempfile.mkdtemp(dir=sandbox))
        for name, raw in originals.items():
            (folder / name).write_bytes(raw)
        (folder / "bad.pt").write_bytes(originals["m.pt"][: len(originals["m.pt"]) // 2] if damage == "cut"
                                        else _meta_without_dataset(originals["m.pt"]))
        (folder / "bad.json").write_bytes(originals["e.json"][:-40])
        (folder / "bad.npz").write_bytes(originals["ex.npz"][:100])
        folders.append(folder)
        befores.append(tree(folder))
    procs = run_many([(folder, args) for folder, (args, _) in zip(folders, CUT_SHORT)],
                     env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(sandbox), "PYTHONWARNINGS": "ignore"})
    for (args, _), proc, before, folder in zip(CUT_SHORT, procs, befores, folders, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        check_outcome(proc.returncode, proc.stdout, proc.stderr, before, folder)
