"""End to end on the built-in SYNTHETIC feature dataset: `vad-train --demo` trains UR-DMU to AUC >= 0.90 on CPU,
and vad-eval re-scores the best checkpoint to the same numbers."""

import json

import pytest

from vadedge.train.cli import eval_main, train_main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert train_main(["--demo", "--out", str(out), "--no-progress"]) == 0
    return out


def test_demo_reaches_auc(demo_run):
    report = json.loads((demo_run / "best_report.json").read_text())
    assert report["auc"] >= 0.90, report
    assert report["videos"] == 60
    assert json.loads((demo_run / "synthetic_data" / "SYNTHETIC.json").read_text())["SYNTHETIC"] is True
    assert len(list((demo_run / "plots").glob("*.png"))) == 8
    log = [json.loads(line) for line in (demo_run / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 300 and all(k in log[0] for k in ("cls", "memory", "triplet", "kl", "distance"))


def test_eval_cli_reproduces_best_report(demo_run, tmp_path, capsys):
    data = demo_run / "synthetic_data"
    rc = eval_main(["--ckpt", str(demo_run / "best.safetensors"), "--test-list", str(data / "test.list"), "--root", str(data),
                    "--gt", str(data / "test_gt.npz"), "--json", str(tmp_path / "r.json"), "--scores-out", str(tmp_path / "s.npz")])
    assert rc == 0
    assert "AUC (ROC)" in capsys.readouterr().out
    again = json.loads((tmp_path / "r.json").read_text())
    best = json.loads((demo_run / "best_report.json").read_text())
    assert again["auc"] == pytest.approx(best["auc"], abs=1e-9)
    # The saved scores evaluate to the same numbers without the model.
    assert eval_main(["--scores", str(tmp_path / "s.npz"), "--gt", str(data / "test_gt.npz"), "--json", str(tmp_path / "r2.json")]) == 0
    assert json.loads((tmp_path / "r2.json").read_text())["ap"] == pytest.approx(again["ap"], abs=1e-12)
