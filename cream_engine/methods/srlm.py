"""SRLM (Yuan et al. 2024): the model judges its own responses; best vs worst by the judge's
mean score; plain DPO (every pair weighs 1)."""

from cream_engine.methods.base import Method

METHOD = Method(name="srlm", uses_judge=True, pair_reward="judge",
                pair_weight=lambda c_j, c_mean, mode: 1.0)
