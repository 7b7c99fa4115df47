"""The pieces of the multi-process path that run in this one process: each process's share of a global
batch (against data.batches and the batch mean), the model as the training objective sees it (DDP's pass
for training, the module for attacks; bf16 autocast for training only), the per-block random starts of
the evaluation (against a plain per-block draw) and the accelerator options of TrainConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from advgrad import distributed
from advgrad._runtime import frozen_eval
from advgrad.attacks import runner
from advgrad.configs import AttackConfig, TrainConfig, TrainingPlan
from advgrad.data.builtin import Dataset, batches
from advgrad.distributed import stream_seed
from advgrad.models.zoo import build_for
from advgrad.norms import get_norm
from advgrad.runs.training import run_training
from advgrad.training import _ddp
from advgrad.training.train import fit


def as_process(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    monkeypatch.setattr(distributed, "world_size", lambda: world)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 130), per_process=st.integers(1, 9), world=st.integers(1, 4), seed=st.integers(0, 99))
def test_shares_cover_every_global_batch_once_and_weigh_to_its_mean(n: int, per_process: int, world: int,
                                                                   seed: int) -> None:
    """Concatenated in rank order, the shares are the one-process batch, sample for sample; process 0 is
    never empty; Σ_r (weight_r / W)·mean_r = the batch mean (what DDP's average then differentiates); the
    shuffling generator ends the epoch where data.batches leaves it."""
    batch_size = per_process * world
    x = torch.arange(n, dtype=torch.float64).view(n, 1)  # sample i holds i
    losses = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    reference_g = torch.Generator().manual_seed(seed)
    reference = [xb.view(-1).long() for xb, _ in batches(x, torch.arange(n), batch_size, shuffle=True,
                                                          generator=reference_g)]
    mp = pytest.MonkeyPatch()
    shares = []
    try:
        for rank in range(world):
            as_process(mp, rank, world)
            g = torch.Generator().manual_seed(seed)
            shares.append(list(_ddp.shards(x, torch.arange(n), batch_size, g)))
            assert torch.equal(g.get_state(), reference_g.get_state())
    finally:
        mp.undo()
    for b, expected in enumerate(reference):
        parts = [shares[r][b] for r in range(world)]
        real = [(xb.view(-1).long(), w) for xb, _, w in parts if w != 0.0]
        assert parts[0][2] != 0.0
        assert torch.equal(torch.cat([i for i, _ in real]), expected)
        for xb, _, w in parts:
            if w == 0.0:  # a stand-in: the batch's first sample, weighed 0
                assert torch.equal(xb.view(-1).long(), expected[:1])
        mean = sum(w / world * float(losses[i].mean()) for i, w in real)
        assert mean == pytest.approx(float(losses[expected].mean()), rel=1e-12)
        if len(expected) % world == 0:
            assert all(w == 1.0 for _, w in real)


class Recorder(nn.Module):
    """Logits from a linear layer; records, per call, whether autocast was on and the logits' dtype."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3)
        self.calls: list[tuple[str, bool, torch.dtype]] = []

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x)
        self.calls.append(("train" if self.training else "eval", torch.is_autocast_enabled("cpu"), z.dtype))
        return z


class Sentinel(nn.Module):
    """Stands for DDP: the training passes must come through here, the attacks' must not."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.module(x)


@pytest.mark.parametrize("amp", [False, True])
def test_train_view_routes_training_through_ddp_and_attacks_to_the_module(amp: bool) -> None:
    module = Recorder()
    sentinel = Sentinel(module)
    view = _ddp.TrainView(module, sentinel, amp=amp).train()
    x = torch.rand(5, 4)
    z = view(x)
    assert sentinel.calls == 1 and z.dtype == torch.float32
    assert module.calls[-1] == ("train", amp, torch.bfloat16 if amp else torch.float32)
    with frozen_eval(view):  # an attack: eval mode, parameters frozen, float32, no DDP
        view(x)
        assert not any(p.requires_grad for p in module.parameters())
    assert sentinel.calls == 1 and module.calls[-1] == ("eval", False, torch.float32)
    assert view.training and module.training and all(p.requires_grad for p in module.parameters())
    with torch.no_grad():  # a train-mode pass without gradients needs no synchronisation either
        view(x)
    assert sentinel.calls == 1


def test_adversarial_training_with_amp_attacks_in_float32(mnist5k: Dataset) -> None:
    from advgrad.training.objectives import AdvConfig, make_objective

    data = Dataset(mnist5k.name, mnist5k.x_train[:64], mnist5k.y_train[:64], mnist5k.x_test[:32],
                   mnist5k.y_test[:32], mnist5k.class_names, mnist5k.mean, mnist5k.std)
    model, _ = build_for("logreg", data, seed=0)
    dtypes: list[tuple[bool, torch.dtype]] = []
    model.register_forward_hook(lambda m, args, out: dtypes.append((m.training, out.dtype)))
    objective = make_objective(AdvConfig("pgd", 0.1, steps=2), epochs=1, seed=0)
    fit(model, data, TrainConfig(epochs=1, batch_size=32, device="cpu", amp=True), objective=objective)
    attack = [d for training, d in dtypes if not training]
    train = [d for training, d in dtypes if training]
    assert attack and set(attack) == {torch.float32}  # the attack steps and the test accuracy
    assert train and set(train) == {torch.bfloat16}


class ZeroGradient(nn.Module):
    """Constant logits (0, 0) whatever x: ∂J/∂X = 0, so PGD never moves from its random start and its
    examples are x + start (projected once): the draws themselves."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros(len(x), 2, dtype=x.dtype) + 0.0 * x.flatten(1)[:, :1]


@pytest.mark.slow
@pytest.mark.isa
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 700), block=st.sampled_from([1, 7, 100, 250, 300, 1000]), seed=st.integers(0, 50),
       keep=st.floats(0.2, 1.0), workers=st.integers(1, 3))
def test_random_starts_are_drawn_per_block_of_the_candidates(n: int, block: int, seed: int, keep: float,
                                                              workers: int) -> None:
    """Block j (candidates j·block … (j+1)·block − 1, in index order) draws U(−ε, ε) from stream_seed(seed, j)'s
    generator: a plain per-block draw of all of them at once, whatever the number of workers."""
    g = torch.Generator().manual_seed(seed)
    x = 0.25 + 0.5 * torch.rand(n, 1, 2, 3, generator=g)
    candidates = torch.rand(n, generator=g) < keep
    y = torch.zeros(n, dtype=torch.long)
    attack = AttackConfig.of("pgd", steps=1)
    outcome = runner.run(ZeroGradient(), x, y, 0.1, [attack], candidates=candidates, seed=seed, block=block,
                         workers=workers)
    expected = x.clone()
    idx = candidates.nonzero().squeeze(1)
    for j, start in enumerate(range(0, len(idx), block)):
        b = idx[start:start + block]
        begin = x[b] + get_norm("inf").random_start(x[b], 0.1, torch.Generator().manual_seed(stream_seed(seed, j)))
        expected[b] = x[b] + (begin - x[b]).clamp(-0.1, 0.1)  # PGD's one step, which does not move
    assert torch.equal(outcome.x_adv, expected)
    assert torch.equal(outcome.attacked, candidates) and not bool(outcome.success.any())


def test_stream_seeds_differ_for_neighbours() -> None:
    seeds = {stream_seed(s, k) for s in range(20) for k in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**64 for s in seeds)


def test_without_torchrun_every_helper_answers_for_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched() and not distributed.active()
    assert distributed.setup("cpu") == torch.device("cpu")
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    t = torch.arange(5)
    assert distributed.share(t, 2) is t and distributed.all_sum(t) is t
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}] and list(distributed.owned(3)) == [0, 1, 2]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert distributed.launched()
    with pytest.raises(ValueError, match="LOCAL_RANK=None in the environment: torchrun sets it to an integer"):
        distributed.setup("cpu")
    model = nn.Linear(2, 2)
    data = Dataset("toy", torch.rand(4, 1, 1, 2), torch.zeros(4, dtype=torch.long), torch.rand(2, 1, 1, 2),
                   torch.zeros(2, dtype=torch.long), ("a", "b"), (0.0,), (1.0,))
    with pytest.raises(ValueError, match="one of 2 started by torchrun, but no process group is up: call "
                                         r"advgrad.distributed.setup\(device\) before fit"):
        fit(model, data, TrainConfig(epochs=1, batch_size=2, device="cpu"))


def test_a_batch_torchrun_processes_cannot_share_stops_before_joining_the_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads torchrun's WORLD_SIZE, so no process joins a group that a peer would then leave while
    the group is still connecting (seen once in CI as "Connection closed by peer" instead of this line)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched_world_size() == 2
    joined: list[str] = []
    monkeypatch.setattr(distributed, "setup", lambda device="auto": joined.append(device))
    plan = TrainingPlan(out=tmp_path / "m.pt", model="logreg", train=TrainConfig(epochs=1, batch_size=33))
    with pytest.raises(ValueError, match="^batch size 33 is not divisible by 2 processes: use a multiple of 2"):
        run_training(plan)
    assert joined == [] and not any(tmp_path.iterdir())
    assert distributed.check_batch_size(34, distributed.launched_world_size()) == 17
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.launched_world_size() == 1


@pytest.mark.parametrize("field", ["amp", "channels_last", "compile"])
def test_accelerator_options_are_off_unrecorded_and_checked(field: str) -> None:
    assert field not in TrainConfig().to_dict()  # records of runs without them are what they were
    assert TrainConfig(**{field: True}).to_dict()[field] is True
    with pytest.raises(ValueError, match=f"{field} must be True or False, got 1"):
        TrainConfig(**{field: 1})


def small(data: Dataset) -> Dataset:
    return Dataset(data.name, data.x_train[:192], data.y_train[:192], data.x_test[:100], data.y_test[:100],
                   data.class_names, data.mean, data.std)


def train(data: Dataset, **options: Any) -> tuple[nn.Module, list[dict[str, Any]]]:
    model, _ = build_for("cnn-small", data, seed=0)
    history = fit(model, data, TrainConfig(epochs=1, batch_size=32, optimizer="sgd", lr=0.05, device="cpu",
                                           **options))
    return model, history.epochs


def test_channels_last_trains_the_same_model_to_rounding(mnist5k: Dataset) -> None:
    """Channels-last convolutions add in another order: SGD's six steps stay within rounding of the
    contiguous run (measured 1.5e-8, half an ulp of the largest weights), and the model comes back in the
    contiguous format it went in with."""
    data = small(mnist5k)
    plain, h0 = train(data)
    fast, h1 = train(data, channels_last=True)
    assert all(p.is_contiguous() for p in fast.parameters())
    for a, b in zip(plain.parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    assert abs(h1[0]["test_accuracy"] - h0[0]["test_accuracy"]) <= 0.02


def test_amp_trains_in_bf16_to_within_its_precision(mnist5k: Dataset) -> None:
    """bf16 keeps 8 bits of mantissa (relative rounding 2⁻⁹ ≈ 0.2 %): the training loss agrees with the
    float32 run to within 2 % (measured 2e-5 relative after six steps), not to the bit."""
    data = small(mnist5k)
    _, h0 = train(data)
    _, h1 = train(data, amp=True)
    assert h1[0]["train_loss"] != h0[0]["train_loss"]
    assert h1[0]["train_loss"] == pytest.approx(h0[0]["train_loss"], rel=0.02)


@pytest.mark.slow
def test_compile_trains_the_same_model_to_rounding(mnist5k: Dataset) -> None:
    """torch.compile fuses the forward and backward (other kernels, other rounding): close, not equal
    (measured 1.5e-8; compiling takes tens of seconds, hence slow)."""
    data = small(mnist5k)
    plain, h0 = train(data)
    compiled, h1 = train(data, compile=True)
    for a, b in zip(plain.parameters(), compiled.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert h1[0]["train_loss"] == pytest.approx(h0[0]["train_loss"], rel=1e-5)


@pytest.mark.parametrize(("env", "probes"), [({}, True), ({"WORLD_SIZE": "2", "RANK": "0"}, True),
                                             ({"WORLD_SIZE": "2", "RANK": "1"}, False),
                                             ({"WORLD_SIZE": "1", "RANK": "0"}, True)])
def test_only_the_writing_process_probes_the_output_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            env: dict[str, str], probes: bool) -> None:
    """Under torchrun every process checks its outputs before the work, but only process 0 writes, so only
    it creates and removes a missing folder to prove it writable: two processes doing so raced ("File
    exists", 2 of 6 `torchrun ... train --out NEW/runs/model.pt` runs here before). The path rules
    (two outputs one file) still hold on every process."""
    from advgrad.cli import _common

    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    probed: list[Path] = []
    monkeypatch.setattr(_common, "check_writable", lambda path: probed.append(path))
    out = tmp_path / "new" / "a.json"
    _common.check_outputs([("--out", out)])
    assert probed == ([out] if probes else [])
    with pytest.raises(_common.UsageFail, match="are the same file"):
        _common.check_outputs([("--out", out), ("--save-examples", out)])
