"""The Oracle baseline (CREAM, Wang et al. 2025): an external reward model, not the policy,
ranks the responses (the score stage runs `[oracle] model`); best vs worst by its reward;
plain DPO (every pair weighs 1). It shows what the self-rewarding methods could reach with a
reward they do not have to produce themselves."""

from cream_engine.methods.base import Method

METHOD = Method(name="oracle", uses_judge=False, pair_reward="oracle",
                pair_weight=lambda c_j, c_mean, mode: 1.0)
