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


def _run(folder, seed, accs, **config):
    """A fake run folder: a journal with ``config`` (over a baseline/entropy one) and one ``test/acc`` per round."""
    from exil.common.journal import Journal

    folder.mkdir(parents=True)
    base = {"strategy": {"_target_": "entropy"}, "choices": {"strategy": "entropy", "method": "baseline"},
            "method": {"name": "baseline", "module": {"optimizer": {"lr": 0.001}}}, "loop": {"seed": seed},
            "tags": []}
    j = Journal(folder / "journal.sqlite")
    with j.transaction():
        j.set_meta("config", {**base, **config})
        j.set_meta("seed", seed)
        for r, acc in enumerate(accs):
            j.add_metrics(r, 10 + 5 * r, {"test/acc": acc})
    j.close()


def test_runs_differing_only_in_tags_and_seed_are_one_configuration(tmp_path, capsys):
    """Tags name a run without changing it: runs whose configs differ only in tags (and seed) are one column,
    mean ± std over the seeds, and a tagged copy of a run with the same seed is that seed once."""
    import exil

    _run(tmp_path / "a", 1, [0.5, 0.6], tags=["paper"])
    _run(tmp_path / "b", 2, [0.7, 0.8], tags=["cpu", "rerun"])
    _run(tmp_path / "c", 2, [0.7, 0.8], tags=["again"])  # seed 2 again, tagged differently
    cmp = exil.compare(tmp_path)
    assert {r["label"] for r in cmp.rows} == {"baseline/entropy"}
    assert next(r for r in cmp.rows if r["n_labels"] == 15)["runs"] == 2
    out = capsys.readouterr().out
    assert "(n=2)" in out and "tags" not in out and "repeat another run's config and seed" in out
    assert comparison_labels([{"config": {"tags": ["x"], "loop": {"seed": 1}}},
                              {"config": {"tags": [], "loop": {"seed": 2}}}]) == ["?/?"] * 2


def _search(folder, trials, direction="maximize", metric="test/acc_auc"):
    """A fake Optuna sweep folder: one run per trial (lr, strategy, seed, accs), ``optimization_results.yaml``
    and each trial's ``.hydra/hydra.yaml`` as Hydra and hydra-optuna-sweeper write them."""
    import yaml

    for i, (lr, strategy, seed, accs) in enumerate(trials):
        _run(folder / str(i), seed, accs, optimized_metric=metric, strategy={"_target_": strategy},
             choices={"strategy": strategy, "method": "baseline"},
             method={"name": "baseline", "module": {"optimizer": {"lr": lr}}})
        (folder / str(i) / ".hydra").mkdir()
        (folder / str(i) / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
            {"hydra": {"sweeper": {"direction": direction, "study_name": "s", "storage": None}}}))
    (folder / "optimization_results.yaml").write_text(yaml.safe_dump(
        {"name": "optuna", "best_params": {"method.module.optimizer.lr": trials[0][0], "strategy": trials[0][1]},
         "best_value": 0.5}))


def test_an_optuna_search_is_compared_by_its_metric_labelled_by_its_parameters_best_marked(tmp_path, capsys):
    """After an Optuna search, ``exil compare`` ranks the trials by the metric the search optimised (here the area
    under the curve, one value per run), labels each by every parameter the search varied, short, and marks the
    best by the search's direction; ``--metric`` still gives the per-round table."""
    import exil
    from exil.common.cli import _compare_cli

    _search(tmp_path / "sweep", [(0.0012345, "entropy", 0, [0.5, 0.6]), (0.0201, "random", 0, [0.7, 0.9]),
                                 (0.0031, "margin", 0, [0.2, 0.3])])
    cmp = exil.compare(tmp_path / "sweep")
    assert cmp.metric == "test/acc_auc" and cmp.x is None and cmp.csv.name == "comparison.csv"
    assert [r["label"] for r in cmp.rows] == ["baseline lr=0.0201 strategy=random",
                                              "baseline lr=0.00123 strategy=entropy",
                                              "baseline lr=0.0031 strategy=margin"]  # best first
    assert [round(r["mean"], 4) for r in cmp.rows] == [0.8, 0.55, 0.25] and [r["best"] for r in cmp.rows] == [
        True, False, False]
    assert cmp.best == "baseline lr=0.0201 strategy=random" and cmp.ranking[0]["label"] == cmp.best
    out = capsys.readouterr().out
    assert "test/acc_auc, the metric the search optimised (maximize)" in out
    assert "★" in next(line for line in out.splitlines() if "lr=0.0201" in line)
    assert "lr=0.00123" in next(line for line in out.splitlines() if "★" not in line and "entropy" in line)
    assert "method.module.optimizer.lr" not in out and "0.0012345" not in out

    # another metric: per round, with the search's best still marked; the ranking goes to trials.csv
    _compare_cli([str(tmp_path / "sweep"), "--metric", "test/acc", "--out", str(tmp_path / "acc")])
    out = capsys.readouterr().out
    assert "test/acc: mean ± std over seeds" in out and "baseline lr=0.0201 strategy=random ★" in out
    assert (tmp_path / "acc" / "trials.csv").exists()


def test_a_metric_no_run_has_is_one_line_naming_theirs(tmp_path, capsys):
    from exil.common.cli import _compare_cli, _guard

    _run(tmp_path / "a", 1, [0.5, 0.6])
    assert _guard(_compare_cli, [str(tmp_path), "--metric", "test/accuracy"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: no run has the metric test/accuracy; theirs: test/acc") and "Traceback" not in err


def test_a_minimising_search_marks_its_lowest_trial_and_labels_never_merge_two_trials(tmp_path):
    import exil

    # two learning rates equal to 3 significant digits: the labels take more digits, never one column for both
    _search(tmp_path / "sweep", [(0.0012341, "entropy", 0, [0.5, 0.6]), (0.0012349, "entropy", 0, [0.1, 0.2])],
            direction="minimize")
    cmp = exil.compare(tmp_path / "sweep")
    assert len(cmp.rows) == 2 and cmp.best == cmp.rows[0]["label"] and round(cmp.rows[0]["mean"], 4) == 0.15
    assert [r["label"] for r in cmp.rows] == ["baseline lr=0.001235 strategy=entropy",
                                              "baseline lr=0.001234 strategy=entropy"]


def test_a_single_seed_is_shown_without_a_spread(tmp_path, capsys):
    """One seed has no standard deviation to show: its cells read ``0.6000``, not ``0.6000 ± 0.0000``, while a
    configuration with two seeds beside it keeps its ``±``."""
    import exil

    _run(tmp_path / "one", 0, [0.5, 0.6], strategy={"_target_": "random"}, choices={"strategy": "random",
                                                                                      "method": "baseline"})
    _run(tmp_path / "two_a", 0, [0.5, 0.7])
    _run(tmp_path / "two_b", 1, [0.7, 0.9])
    exil.compare(tmp_path)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("│") and " 15 " in line)
    assert "0.6000 " in row and "0.6000 ±" not in row and "0.8000 ± 0.1000" in row, out
    assert "± 0.0000" not in out, out
