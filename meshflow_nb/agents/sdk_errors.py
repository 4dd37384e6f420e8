"""Turn the anthropic SDK's exceptions into our `ModelCallError` family.

The mapping is by HTTP status, as the API documents it: 429 and 529 (and other 5xx, a
lost connection, a stream cut short) are overload, worth a retry after the server's
``retry-after-ms`` / ``retry-after``; 401 and 403 are the key; 404 is an unknown or
retired model id; a 400 that names the model is the same; a replay server's miss says
``replay miss``.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

import anthropic

from .errors import (
    KEY_VAR,
    ModelAuthError,
    ModelCallError,
    ModelOverloadedError,
    ModelRequestError,
    ReplayMissError,
    RetiredModelError,
)
from .pricing import PRICES, ModelPrice, current_models


def model_error(error: anthropic.APIError, model: str,
                prices: Mapping[str, ModelPrice] | None = None) -> ModelCallError:
    """Our error for one failed SDK call to ``model``."""
    if isinstance(error, anthropic.APIConnectionError):  # timeouts included
        return ModelOverloadedError(f"could not reach the Anthropic API ({error})", model=model)
    status = getattr(error, "status_code", None)
    detail = _detail(error)
    if status is None or status < 400:  # an error event inside a 200 stream, mid-answer
        return ModelOverloadedError(f"the answer from {model} broke off: {detail}", model=model)
    retry_after = retry_after_s(error.response.headers)
    if status in (429, 529) or status >= 500:
        what = "rate-limited the call" if status == 429 else "is overloaded"
        return ModelOverloadedError(f"the Anthropic API {what} ({status}: {detail})",
                                    model=model, status=status, retry_after_s=retry_after)
    if status in (401, 403):
        refused = "refused the key" if status == 401 else f"does not let this key call {model}"
        return ModelAuthError(f"the Anthropic API {refused} ({status}: {detail}); check "
                              f"{KEY_VAR}, or set MESHFLOW_MOCK=1 to run offline",
                              model=model, status=status)
    if detail.startswith("replay miss"):
        return ReplayMissError(f"{detail}; record the run again (MESHFLOW_RECORD), or undo "
                               "the change", model=model, status=status)
    if status == 404 or (status == 400 and model in detail and "model" in detail):
        return RetiredModelError(
            f"the Anthropic API does not know model {model!r} (retired or misspelt: {status} "
            f"{detail}){_replacement(model, prices)}; current models: "
            f"{', '.join(current_models(prices))}. Set MESHFLOW_MODEL or the lesson's model "
            "parameter to one of them", model=model, status=status)
    return ModelRequestError(f"the Anthropic API refused the request to {model} ({status}: "
                             f"{detail})", model=model, status=status)


def _replacement(model: str, prices: Mapping[str, ModelPrice] | None) -> str:
    price = (PRICES if prices is None else prices).get(model)
    if price is None or price.replacement is None:
        return ""
    return f"; the price table lists it as {price.status}, replaced by {price.replacement}"


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds
    or an HTTP date); None when neither is there or makes sense."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            seconds = _http_date_s(raw)
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _http_date_s(raw: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(error: anthropic.APIError) -> str:
    """The API's own message from the error body, else the SDK's."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(error, "message", error))
