from exil.common.report import comparison_labels


def meta(strategy, query_size, seed, **strategy_args):
    return {"config": {"choices": {"method": "baseline", "strategy": strategy},
                       "strategy": {"_target_": strategy, **strategy_args},
                       "loop": {"seed": seed, "query_size": query_size}, "oracle": {"seed": seed}}}


def test_runs_differing_only_in_seed_share_a_label():
    assert comparison_labels([meta("entropy", 5, 0), meta("entropy", 5, 1)]) == ["baseline/entropy"] * 2


def test_runs_differing_in_config_are_told_apart():
    labels = comparison_labels([meta("entropy", 5, 0), meta("entropy", 20, 1), meta("bald", 5, 0, passes=10)])
    assert labels == ["baseline/entropy loop.query_size=5", "baseline/entropy loop.query_size=20",
                      "baseline/bald loop.query_size=5 passes=10"]


def _journal(folder, seed, accs, strategy="entropy"):
    from exil.common.journal import Journal

    j = Journal(folder / "journal.sqlite")
    with j.transaction():
        j.set_meta("config", {"strategy": {"_target_": strategy}, "choices": {"strategy": strategy,
                              "method": "baseline"}, "method": {"name": "baseline"}, "loop": {"seed": seed}})
        j.set_meta("seed", seed)
        for r, acc in enumerate(accs):
            j.add_metrics(r, 10 + 5 * r, {"test/acc": acc})
    j.close()


def test_the_python_api_compares_folders_of_runs_and_returns_the_numbers(tmp_path):
    """``exil.compare`` finds runs under folders (as ``exil compare``), needs no output folder, and returns rows
    whose mean and std are those of the seeds (numpy's, population std) — a single seed with std 0."""
    import numpy as np

    import exil

    for seed, accs in ((1, [0.5, 0.6]), (2, [0.7, 0.8])):
        (tmp_path / "sweep" / f"e{seed}").mkdir(parents=True)
        _journal(tmp_path / "sweep" / f"e{seed}", seed, accs)
    (tmp_path / "sweep" / "r1").mkdir()
    _journal(tmp_path / "sweep" / "r1", 1, [0.4, 0.45], strategy="random")
    cmp = exil.compare(tmp_path / "sweep")
    assert cmp.png.exists() and cmp.csv.parent == tmp_path / "sweep" and cmp.x == "n_labels"
    got = {(r["label"], r["n_labels"]): (r["mean"], r["std"], r["runs"]) for r in cmp.rows}
    entropy = next(label for label, _ in got if "entropy" in label)
    assert got[(entropy, 15)] == (np.mean([0.6, 0.8]), np.std([0.6, 0.8]), 2)
    random_ = next(label for label, _ in got if "random" in label)
    assert got[(random_, 10)] == (0.4, 0.0, 1)
    assert list(cmp.frame().columns) == ["label", "n_labels", "mean", "std", "runs"]


def test_comparing_runs_with_no_evaluated_round_is_one_line(tmp_path, capsys):
    from exil.common.cli import _compare_cli, _guard

    (tmp_path / "live").mkdir()
    _journal(tmp_path / "live", 1, [])  # started, round 0 not evaluated yet
    assert _guard(_compare_cli, [str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: none of the 1 run(s) found has an evaluated round yet") and "Traceback" not in err
    assert _guard(_compare_cli, [str(tmp_path / "nothing-here")]) == 2
    assert "no run folders" in capsys.readouterr().err
