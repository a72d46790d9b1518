"""Plain iterative DPO with the implicit reward: CREAM with C fixed at 1."""

from cream_engine.methods.base import Method

METHOD = Method(name="dpo", uses_judge=False, pair_reward="implicit",
                pair_weight=lambda c_j, c_mean, mode: 1.0)
