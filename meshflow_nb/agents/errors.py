"""What can go wrong when a live agent calls a model, each with what to do about it.

Every error says whether another attempt could help (``retryable``) and how long the
server asked to wait (``retry_after_s``): the circuit breaker reads both, so overload
is retried and counted while a refused key or a retired model fails at once.
Messages never repeat a key (`redacted`).
"""

from __future__ import annotations

from ..errors import ConfigError, MeshflowError, redacted

KEY_VAR = "ANTHROPIC_API_KEY"
BASE_URL_VAR = "ANTHROPIC_BASE_URL"
MODEL_VAR = "MESHFLOW_MODEL"
REPLAY_VAR = "MESHFLOW_REPLAY"
RECORD_VAR = "MESHFLOW_RECORD"


class ModelCallError(MeshflowError):
    """A model call that did not give an answer; ``status`` is the HTTP status, if any."""

    retryable = False

    def __init__(self, message: str, *, model: str, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(redacted(message))
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s


class ModelOverloadedError(ModelCallError):
    """429, 529, a 5xx, a dropped connection or a stream cut short: worth another try."""

    retryable = True


class ModelAuthError(ModelCallError):
    """401 or 403: the key is missing, wrong or not allowed; retrying cannot help."""


class RetiredModelError(ModelCallError):
    """The API does not know the model id (404, or a 400 naming the model)."""


class ModelRequestError(ModelCallError):
    """Any other refused request (400, 413, 422...)."""


class ReplayMissError(ModelCallError):
    """A replayed run asked for an exchange its cassette does not hold."""


class ModelOutputError(ModelCallError):
    """The model answered, but not in the shape asked for (a malformed structured answer)."""


class MissingKeyError(ConfigError):
    """Live mode was asked for with no key and no local server or cassette to answer."""

    def __init__(self) -> None:
        super().__init__(
            f"no {KEY_VAR} is set, so live agents cannot call a model",
            argument=KEY_VAR,
            fix=f"set MESHFLOW_MOCK=1 for the offline mock agents, or {KEY_VAR} for Claude "
                f"(or {REPLAY_VAR}=cassette.json to replay a recorded run, or "
                f"{BASE_URL_VAR}=http://127.0.0.1:PORT for a local server)")
