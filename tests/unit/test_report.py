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
