import argparse

from benchmark.perf import train as perf_train


def test_perf_train_prints_both_variants(capsys):
    parser = argparse.ArgumentParser()
    perf_train.add_arguments(parser)
    args = parser.parse_args(["--crop", "16", "--iters", "2", "--warmup", "0", "--synth-prob", "1.0"])
    assert perf_train.run(args) == 0
    out = capsys.readouterr().out
    assert "baseline (no synthesis)" in out and "synthesis p=1.0" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("baseline", "synthesis p"))]
    assert float(rows[0][-1]) == 0.0  # baseline never synthesizes
    assert float(rows[1][-1]) > 0.0  # healthy crops got tumors
