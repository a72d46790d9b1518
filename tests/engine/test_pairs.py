from __future__ import annotations

from cream_engine.methods import get_method
from cream_engine.stages.pairs import agreement, best_and_worst


def test_best_and_worst() -> None:
    assert best_and_worst([0.1, 0.9, -0.5, 0.3]) == (1, 2)
    assert best_and_worst([None, 2.0, None, 1.0]) == (1, 3)
    assert best_and_worst([1.0, 1.0, 1.0]) is None            # a tie: dropped
    assert best_and_worst([None, None, 3.0]) is None           # fewer than two rewards
    assert best_and_worst([None, None]) is None                # all missing
    assert best_and_worst([2.0, 1.0, 2.0, 1.0]) == (0, 3)      # ties: earliest best, latest worst
    assert best_and_worst([float("nan"), 1.0, 0.0]) == (1, 2)


def test_agreement_counts_pairs_where_the_other_reward_agrees() -> None:
    pairs = [{"other_rewards": {"judge": [4.0, 2.0]}},
             {"other_rewards": {"judge": [1.0, 3.0]}},
             {"other_rewards": {"judge": [None, 3.0]}},
             {"other_rewards": {}}]
    assert agreement(pairs, "judge") == 0.5
    assert agreement(pairs, "implicit") is None


def test_method_weights() -> None:
    cream, srlm, dpo = get_method("cream"), get_method("srlm"), get_method("dpo")
    assert (cream.pair_reward, srlm.pair_reward, dpo.pair_reward) == \
        ("implicit", "judge", "implicit")
    assert srlm.uses_judge and not cream.uses_judge
    assert cream.pair_weight(0.9, 0.6, "average") == 0.6
    assert cream.pair_weight(0.9, 0.6, "dynamic") == 0.9
    assert cream.pair_weight(None, 0.6, "dynamic") == 0.6    # missing -> the mean
    assert cream.pair_weight(None, None, "average") == 1.0   # first iteration: no C yet
    assert cream.pair_weight(0.2, 0.3, "average") == 0.3     # not clipped at 1/2
    assert srlm.pair_weight(0.1, 0.1, "average") == dpo.pair_weight(0.1, 0.1, "dynamic") == 1.0
