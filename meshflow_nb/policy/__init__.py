"""Policy and its governance layers.

`Policy` says which layers are on; the `Governor` applies them to a run. Each layer
lives in its own module: guardian, circuit, carbon, rules (pre-flight), learning.
"""

from .circuit import CircuitBreakerConfig
from .config import HumanInLoopConfig, Policy, PolicyMode
from .governor import Governor, PolicyStop
from .guardian import Action, Category

__all__ = ["Action", "Category", "CircuitBreakerConfig", "Governor", "HumanInLoopConfig",
           "Policy", "PolicyMode", "PolicyStop"]
