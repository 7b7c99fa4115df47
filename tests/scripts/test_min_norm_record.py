"""scripts/min_norm_record.py end to end in its --quick mode (a few digits, a few steps) on the session's
small trained model: every table has a row for each advgrad attack of the norm, each peer's and both
ensembles; the ensemble is the per-point minimum over the attacks; the figure is written."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning"),
              pytest.mark.slow, pytest.mark.heavy]  # a record script end to end: tens of seconds

ROWS = {  # per norm: advgrad's rows, then the peers' (adv-lib, Foolbox, torchattacks)
    "0": ["FMN", "FMN (paper)", "σ-zero", "PGD-L0 (bisection)", "adv-lib fmn", "adv-lib sigma_zero",
          "Foolbox L0FMNAttack"],
    "1": ["FMN", "FMN (paper)", "ALMA", "EAD", "FAB", "adv-lib fmn", "adv-lib alma", "adv-lib fab",
          "Foolbox L1FMNAttack", "Foolbox EADAttack", "torchattacks EADL1"],
    "2": ["FMN", "FMN (paper)", "DDN", "CW", "ALMA", "DeepFool", "FAB", "adv-lib fmn", "adv-lib ddn",
          "adv-lib carlini_wagner_l2", "adv-lib alma", "adv-lib df", "adv-lib fab", "Foolbox L2FMNAttack",
          "Foolbox DDNAttack", "Foolbox L2CarliniWagnerAttack", "Foolbox L2DeepFoolAttack", "torchattacks DeepFool",
          "torchattacks CW"],
    "inf": ["FMN", "FMN (paper)", "DeepFool", "FAB", "adv-lib fmn", "adv-lib df", "adv-lib fab",
            "Foolbox LInfFMNAttack", "Foolbox LinfDeepFoolAttack"],
}
ENSEMBLES = ["ensemble (advgrad)", "ensemble (all)"]


def test_quick_record_has_every_row_and_a_true_ensemble(tmp_path, script, trained_small_path) -> None:
    for peer in ("adv_lib", "foolbox", "torchattacks", "matplotlib"):
        pytest.importorskip(peer)
    record = script("min_norm_record")
    argv = ["--quick", "--n", "5", "--models", f"small={trained_small_path}", "--out", str(tmp_path)]
    assert record.main(argv) == 0
    text = (tmp_path / "tables.md").read_text()
    assert f"Command: `python scripts/min_norm_record.py {' '.join(argv)}`" in text
    saved = json.loads((tmp_path / "record.json").read_text())
    norms = saved["models"]["small"]["norms"]
    assert list(norms) == ["0", "1", "2", "inf"]
    for norm, rows in norms.items():
        assert list(rows) == ROWS[norm] + ENSEMBLES, norm
        section = text.split(f"), {record.LABEL[norm]}: 5 points")[1].split("###")[0]
        assert [line.split(" | ")[0].lstrip("| ") for line in section.splitlines() if line.startswith("| ")][1:] \
            == ROWS[norm] + ENSEMBLES, norm
        attacks = {name: r["distances"] for name, r in rows.items() if name not in ENSEMBLES}
        mine = {name: d for name, d in attacks.items() if rows[name]["who"] == "advgrad"}
        for i in range(5):  # the ensembles are the per-point minima, over every attack and over advgrad's
            assert rows["ensemble (all)"]["distances"][i] == min(d[i] for d in attacks.values()), (norm, i)
            assert rows["ensemble (advgrad)"]["distances"][i] == min(d[i] for d in mine.values()), (norm, i)
        for name, r in rows.items():
            assert len(r["distances"]) == 5 and all(d >= 0 for d in r["distances"]), name
            assert r["optimality"] is None or math.isnan(r["optimality"]) or r["optimality"] <= 1 + 1e-12, name
        assert rows["ensemble (all)"]["optimality"] in (1.0,) or math.isnan(rows["ensemble (all)"]["optimality"])
    assert (tmp_path / "curves-small.png").stat().st_size > 10_000
