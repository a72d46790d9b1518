"""What differs between methods, and nothing else (`methods/base.py` says what a method is):
which reward ranks the responses into pairs, whether the judge runs, and the weight (soft
label) each pair trains with. Generation, storage, checkpoints and the trainer loop are shared.
"""

from __future__ import annotations

from cream_engine.errors import ConfigError
from cream_engine.methods import cream, dpo, oracle, scir, srlm
from cream_engine.methods.base import Method

METHODS: dict[str, Method] = {m.METHOD.name: m.METHOD for m in (srlm, cream, dpo, scir, oracle)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is not available (known: {', '.join(METHODS)})")
    return METHODS[name]
