"""Model providers through litellm: which models, checked before a run, every call recorded.

A model is any litellm model string (`openai/gpt-4o-mini`, `anthropic/claude-…`, `ollama/llama3`,
`hosted_vllm/…` with an api base). DSPy formats the prompts and parses the answers; the request
itself goes through litellm (DSPy's litellm engine), one attempt at a time: retries, backoff and
timeouts are ours, so every attempt — failed ones too — becomes an `LLMCall` in the experiment log
with its tokens, dollars (litellm's offline cost map), latency and outcome.

Keys stay where the providers expect them (environment variables); they are never passed through
kscout's configuration, and error text is scrubbed of their values before it is recorded.
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.evidence import FailureClass, LLMCall

# A placeholder key for local OpenAI-compatible servers that take none (the OpenAI client refuses
# an empty key). Not a secret; only used when --api-base is given and no key is set.
LOCAL_KEY = "kscout-local-no-key"


class ModelConfigError(ValueError):
    """A model that cannot be used; the message names the model and the fix."""


class ModelSpec(BaseModel):
    model: str = Field(description="litellm model string, provider/model (e.g. openai/gpt-4o-mini)")
    weight: float = Field(1.0, gt=0, description="share of proposals this model writes")
    role: Literal["any", "propose", "plan"] = Field("any", description="plan: world-model updates only; "
                                                    "propose: kernels (and diagnoses) only; any: both")
    api_base: str | None = Field(None, description="endpoint for self-hosted or proxy providers")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(8000, ge=256, description="answer budget per call; longer answers are truncated")


class CallPolicy(BaseModel):
    timeout_s: float = Field(180.0, gt=0, description="per request")
    retries: int = Field(3, ge=0, description="retries on rate limits, timeouts and server errors")
    backoff_s: float = Field(2.0, ge=0, description="first retry delay; doubles each retry, capped at 60 s")


def parse_model_arg(text: str, api_base: str | None = None) -> ModelSpec:
    """`provider/model` or `provider/model=WEIGHT` (the CLI's --model)."""
    model, _, weight = text.partition("=")
    try:
        w = float(weight) if weight else 1.0
    except ValueError:
        raise ModelConfigError(f"--model {text!r}: the weight after '=' must be a number, e.g. openai/gpt-4o-mini=3")
    return ModelSpec(model=model.strip(), weight=w, api_base=api_base)


def preflight(spec: ModelSpec) -> None:
    """Refuse, before the run starts, a model string litellm cannot route or a missing key."""
    import litellm
    litellm.suppress_debug_info = True
    if "/" not in spec.model:
        raise ModelConfigError(f"model {spec.model!r}: give the provider too, as provider/model "
                               "(e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/llama3); "
                               "providers: https://docs.litellm.ai/docs/providers")
    try:
        provider = litellm.get_llm_provider(spec.model)[1]
    except Exception as e:
        raise ModelConfigError(f"model {spec.model!r}: litellm does not know this provider ({_first_line(e)}); "
                               "see https://docs.litellm.ai/docs/providers") from None
    if spec.api_base:
        return   # a self-hosted endpoint: it may need no key, and litellm cannot tell
    env = litellm.validate_environment(spec.model)
    missing = env.get("missing_keys") or []
    conventional = f"{provider.upper()}_API_KEY"
    if not missing and conventional in os.environ and not os.environ[conventional].strip():
        missing = [conventional]   # set but empty: litellm counts it as present, the provider will not
    if missing:
        raise ModelConfigError(f"model {spec.model!r} needs {', '.join(missing)} in the environment "
                               f"(export {missing[0]}=…; kscout never stores keys), or --api-base for a "
                               "self-hosted endpoint")


def scrub(text: str) -> str:
    """Remove the values of key-like environment variables from provider error text."""
    for name, value in os.environ.items():
        if len(value) >= 8 and re.search(r"(KEY|TOKEN|SECRET|PASSWORD)", name, re.I) and value in text:
            text = text.replace(value, f"<{name}>")
    return text


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _outcome(e: BaseException) -> tuple[str, bool]:
    """(outcome, retryable) for an exception raised by a model call."""
    from dspy.utils import exceptions as x
    if isinstance(e, x.LMRateLimitError):
        return "rate_limited", True
    if isinstance(e, x.LMTimeoutError):
        return "timeout", True
    if isinstance(e, (x.LMServerError, x.LMTransportError)):
        return "server_error", True
    if isinstance(e, (x.LMAuthError, x.LMBillingError, x.LMNotConfiguredError)):
        return "auth_error", False
    if isinstance(e, x.LMInvalidRequestError):
        return "bad_request", False
    return "error", False


class CallResult(BaseModel):
    """What one program call produced: its prediction (or raw text when parsing failed), and calls."""

    model_config = {"arbitrary_types_allowed": True}

    prediction: Any = None
    raw: str = ""                       # the model's last answer text (for extraction after a parse failure)
    finish_reason: str = ""
    calls: list[LLMCall] = Field(default_factory=list)
    failure: FailureClass | None = None
    error: str = ""


class ModelPool:
    """The configured models, chosen by weight; each call is one program run, retried on
    transient provider errors, with every attempt recorded."""

    def __init__(self, specs: list[ModelSpec], policy: CallPolicy | None = None, seed: int = 0):
        if not specs:
            raise ModelConfigError("no model configured")
        import dspy
        self.specs, self.policy = specs, policy or CallPolicy()
        self.rng = random.Random(seed)
        # One base LM per model; each call works on a copy so concurrent calls (threaded Ray actor)
        # keep separate histories, which is where usage, cost and finish reason are read from.
        self.lms = {s.model: self._lm(s) for s in specs}
        # One call per attempt: the JSON fallback would silently make a second paid call; a
        # malformed answer is handled by our own extraction instead.
        self.adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)

    def _lm(self, spec: ModelSpec):
        import dspy
        from dspy.utils.exceptions import LMConfigurationError
        common = dict(engine="litellm", cache=False, num_retries=0, timeout=self.policy.timeout_s, **self._client(spec))
        try:
            return dspy.LM(spec.model, temperature=spec.temperature, max_tokens=spec.max_tokens, **common)
        except LMConfigurationError as e:
            if "reasoning models" not in str(e):
                raise ModelConfigError(f"model {spec.model!r}: {e}") from None
            # OpenAI reasoning models (o1/o3/gpt-5...) take only temperature 1 and >= 16k output tokens
            # (their reasoning counts against it): use those rather than refuse the model.
            return dspy.LM(spec.model, temperature=1.0, max_tokens=max(16000, spec.max_tokens), **common)

    @staticmethod
    def _client(spec: ModelSpec) -> dict[str, str]:
        if not spec.api_base:
            return {}
        import litellm
        missing = litellm.validate_environment(spec.model).get("missing_keys") or []
        return {"api_base": spec.api_base, **({"api_key": LOCAL_KEY} if missing else {})}

    def choose(self, role: str = "propose") -> ModelSpec:
        fit = [s for s in self.specs if s.role in ("any", role)] or self.specs
        return self.rng.choices(fit, weights=[s.weight for s in fit])[0]

    def call(self, program, role: str, spec: ModelSpec | None = None, **inputs) -> CallResult:
        import dspy
        from dspy.utils.exceptions import AdapterParseError
        spec = spec or self.choose()
        result = CallResult()
        for attempt in range(self.policy.retries + 1):
            lm = self.lms[spec.model].copy()
            t0 = time.perf_counter()
            try:
                with dspy.context(lm=lm, adapter=self.adapter):
                    result.prediction = program(**inputs)
                self._record(result, lm, spec, role, t0, "ok")
                return result
            except AdapterParseError as e:
                # The model answered, but not in the program's format: keep its text for extraction.
                self._record(result, lm, spec, role, t0, "ok")
                result.raw = e.lm_response or result.raw
                result.error = "the answer did not follow the output format"
                return result
            except Exception as e:
                outcome, retryable = _outcome(e)
                if outcome == "error" and not _is_lm_error(e):
                    raise   # our bug, not the provider's: never recorded as a model failure
                self._record(result, lm, spec, role, t0, outcome, scrub(_first_line(e)))
                if not retryable or attempt == self.policy.retries:
                    result.failure, result.error = FailureClass.model_error, f"{spec.model}: {outcome}: {result.calls[-1].error}"
                    return result
                time.sleep(min(self.policy.backoff_s * 2 ** attempt, 60.0))
        return result

    def _record(self, result: CallResult, lm, spec: ModelSpec, role: str, t0: float, outcome: str,
                error: str = "") -> None:
        latency = time.perf_counter() - t0
        if not lm.history:   # a failed request leaves no history entry
            result.calls.append(LLMCall(model=spec.model, role=role, latency_s=latency, outcome=outcome, error=error))
        for entry in lm.history:   # normally one
            call = call_from_history(entry, spec.model, role)
            call.latency_s, call.outcome, call.error = latency / len(lm.history), outcome, error
            choice = _choice(entry)
            if choice is not None:   # the model's answer: what extraction reads if parsing failed
                result.finish_reason = call.finish_reason
                result.raw = str(getattr(getattr(choice, "message", None), "content", "") or "")
            result.calls.append(call)


def _choice(entry: dict):
    choices = getattr(entry.get("response"), "choices", None) or []
    return choices[0] if choices else None


def call_from_history(entry: dict, model: str, role: str) -> LLMCall:
    """An LLMCall from one entry of a DSPy LM's history: tokens, dollars (litellm's figure, else
    its offline price list), finish reason."""
    usage = entry.get("usage") or {}
    call = LLMCall(model=model, role=role, tokens_in=int(usage.get("prompt_tokens") or 0),
                   tokens_out=int(usage.get("completion_tokens") or 0))
    cost = entry.get("cost")
    call.dollars, call.priced = (float(cost), True) if cost is not None else _price(model, call)
    choice = _choice(entry)
    if choice is not None:
        call.finish_reason = str(getattr(choice, "finish_reason", "") or "")
    return call


def _price(model: str, call: LLMCall) -> tuple[float, bool]:
    """Dollars from litellm's offline cost map; (0, False) when the model is not in it."""
    import litellm
    try:
        p, c = litellm.cost_per_token(model=model, prompt_tokens=call.tokens_in, completion_tokens=call.tokens_out)
        return float(p + c), True
    except Exception:
        return 0.0, False


def _is_lm_error(e: BaseException) -> bool:
    from dspy.utils.exceptions import LMError
    return isinstance(e, LMError)
