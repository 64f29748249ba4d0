"""Retry and wait policies (tenacity), built at run time so tests and the demo can tune them.

Two kinds of retry live here:
- transient AWS failures (throttling, 5xx, dropped connections) around a single call;
- semantic waits: poll until AWS shows a state (eventual consistency, asynchronous transitions).
Every retry is announced through `on_retry`, which the reporter turns into a visible line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_delay,
    wait_random_exponential,
)

T = TypeVar("T")
log = logging.getLogger("ksdelete.retry")

# on_retry(call, attempt, delay_seconds, reason)
RetryObserver = Callable[[str, int, float, str], None]


def _ignore(call: str, attempt: int, delay: float, reason: str) -> None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Tunable numbers for every retry and wait ksdelete does."""

    call_attempts: int = 8  # per AWS call, for throttling and 5xx answers
    connection_attempts: int = 4  # per AWS call, when the endpoint cannot be reached
    call_initial: float = 0.5
    call_max: float = 20.0
    consistency_timeout: float = 120.0  # eventual consistency: how long a read may lag a write
    consistency_initial: float = 0.25
    consistency_max: float = 5.0
    poll_initial: float = 1.0  # waiting for a store transition or for keys to vanish
    poll_max: float = 60.0
    sleep: Callable[[float], None] = time.sleep


def _before_sleep(call: str, on_retry: RetryObserver, reason_of: Callable[[RetryCallState], str]
                  ) -> Callable[[RetryCallState], None]:
    def hook(state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        log.debug("retry %s after attempt %d (%s) in %.2fs", call, state.attempt_number,
                  reason_of(state), delay)
        on_retry(call, state.attempt_number, delay, reason_of(state))

    return hook


def _exception_reason(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return str(getattr(exc, "aws_code", None) or type(exc).__name__)


def call_with_retries(
    fn: Callable[[], T],
    *,
    call: str,
    retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    on_retry: RetryObserver = _ignore,
    unreachable: Callable[[BaseException], bool] = lambda exc: False,
) -> T:
    """Run one AWS call, retrying transient failures with exponential backoff and jitter."""

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        limit = policy.connection_attempts if exc is not None and unreachable(exc) \
            else policy.call_attempts
        return state.attempt_number >= limit

    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop,
        wait=wait_random_exponential(multiplier=policy.call_initial, max=policy.call_max),
        sleep=policy.sleep,
        reraise=True,
        before_sleep=_before_sleep(call, on_retry, _exception_reason),
    )
    return retrying(fn)


def poll_until(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    call: str,
    timeout: float,
    initial: float,
    maximum: float,
    policy: RetryPolicy,
    on_retry: RetryObserver = _ignore,
    on_poll: RetryObserver = _ignore,
    describe: Callable[[T], str] = str,
) -> T:
    """Call `read` until `done(result)` or `timeout` seconds pass; return the last result.

    The caller decides what a last result that is not done means (usually: still pending).
    A read that raised is reported to `on_retry`; a read that is simply not done yet to
    `on_poll`.
    """

    def before_sleep(state: RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        if state.outcome is None or state.outcome.failed:
            on_retry(call, state.attempt_number, delay, _exception_reason(state))
        else:
            on_poll(call, state.attempt_number, delay, describe(state.outcome.result()))

    retrying = Retrying(
        retry=retry_if_result(lambda r: not done(r)),
        stop=stop_after_delay(timeout),
        wait=wait_random_exponential(multiplier=initial, max=maximum),
        sleep=policy.sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        before_sleep=before_sleep,
    )
    return retrying(read)


def retry_while_lagging(
    fn: Callable[[], T],
    *,
    call: str,
    lagging: Callable[[BaseException], bool],
    policy: RetryPolicy,
    on_retry: RetryObserver = _ignore,
) -> T:
    """Run a write that AWS may refuse for a moment after an earlier one (eventual
    consistency: a TagResource right after CancelKeyDeletion can still see the key pending),
    retrying while `lagging(error)` within the consistency window; then the error stands."""
    retrying = Retrying(
        retry=retry_if_exception(lagging),
        stop=stop_after_delay(policy.consistency_timeout),
        wait=wait_random_exponential(multiplier=policy.consistency_initial,
                                     max=policy.consistency_max),
        sleep=policy.sleep,
        reraise=True,
        before_sleep=_before_sleep(call, on_retry, _exception_reason),
    )
    return retrying(fn)
