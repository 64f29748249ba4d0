"""Error classes that carry their exit status, the exit status table itself, and what AWS's
error codes mean to ksdelete (which error class, whether to try again)."""

from __future__ import annotations

import errno
from enum import IntEnum
from typing import ClassVar


class ExitStatus(IntEnum):
    """Documented exit codes (README, "Exit codes")."""

    OK = 0
    ERROR = 1
    USAGE = 2
    PENDING = 3
    REFUSED = 4
    INTERRUPTED = 130  # SIGINT (Ctrl-C)
    TERMINATED = 143  # SIGTERM (systemd, Kubernetes, timeout)


class KsdeleteError(Exception):
    """An expected failure: says what went wrong, where, and what to do about it."""

    exit_status: ClassVar[ExitStatus] = ExitStatus.ERROR
    code: ClassVar[str] = "error"
    label: ClassVar[str] = "error"  # how the CLI and the reporters label it

    def __init__(self, what: str, *, where: str = "", hint: str = "",
                 details: tuple[str, ...] = (), key_ids: tuple[str, ...] = ()) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint
        self.details = details  # lines that follow the first (the keys, the evidence)
        self.key_ids = key_ids

    def __str__(self) -> str:
        """The first line: what (where). What to do."""
        text = self.what
        if self.where:
            text += f" ({self.where})"
        if self.hint:
            text += f". {self.hint}"
        return text

    @property
    def text(self) -> str:
        """The first line, then one line per detail."""
        return "\n".join((str(self), *self.details))

    def as_json(self) -> dict[str, object]:
        """The `error` member of the JSON document: code and first line, and the details and
        keys when there are any."""
        out: dict[str, object] = {"code": self.code, "message": str(self)}
        if self.details:
            out["details"] = list(self.details)
        if self.key_ids:
            out["key_ids"] = list(self.key_ids)
        return out


class UsageError(KsdeleteError):
    exit_status = ExitStatus.USAGE
    code = "usage"


class StoreNotFoundError(KsdeleteError):
    code = "store-not-found"


class AwsError(KsdeleteError):
    """An AWS call failed after retries."""

    code = "aws"

    def __init__(
        self,
        what: str,
        *,
        operation: str,
        aws_code: str,
        request_id: str | None = None,
        where: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(what, where=where, hint=hint)
        self.operation = operation
        self.aws_code = aws_code
        self.request_id = request_id


# Typed AWS errors: the gateway raises these, so nothing above it matches AWS error-code strings.


class KeyNotFound(AwsError):
    """NotFoundException: the key does not exist (any more). Key IDs are never reused."""


class KeyInvalidState(AwsError):
    """KMSInvalidStateException on a key operation."""


class KeyAlreadyPendingDeletion(KeyInvalidState):
    """ScheduleKeyDeletion on a key that is already pending deletion: the work is done."""


class StoreInvalidState(AwsError):
    """CustomKeyStoreInvalidStateException: the store is not in the state the call needs."""


class StoreHasKeys(AwsError):
    """CustomKeyStoreHasCMKsException: DeleteCustomKeyStore while keys remain in the store."""


class AccessDenied(AwsError):
    """AccessDeniedException: IAM or the key policy denies the call."""


class Throttled(AwsError):
    """ThrottlingException and friends, after every retry."""


class OperationUnsupported(AwsError):
    """The operation is unknown to this botocore (too old) or to the endpoint
    (UnknownOperationException): `what` says which, and the boto3 it needs."""


class CredentialsError(KsdeleteError):
    code = "credentials"


class AssumeRoleError(CredentialsError):
    """A role (of a scope's chain) could not be assumed: AccessDenied, any other STS error, or
    an STS endpoint that cannot be reached. Names the account and role, and the AWS code."""

    code = "assume-role"

    def __init__(self, what: str, *, account: str, role_arn: str, aws_code: str,
                 where: str = "", hint: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(what, where=where, hint=hint, details=details)
        self.account = account
        self.role_arn = role_arn
        self.aws_code = aws_code


class JournalError(KsdeleteError):
    """The journal could not be written after the run began: stop, but report what AWS did."""

    code = "journal"


class LockTimeoutError(KsdeleteError):
    """Another run held this store's lock for longer than this run would wait: run again
    later (exit 3, like any other "not yet")."""

    exit_status = ExitStatus.PENDING
    code = "locked"


class RefusedError(KsdeleteError):
    """A safety check (a planner gate) stopped the run before its next point of no return."""

    exit_status = ExitStatus.REFUSED
    code = "refused"
    label = "refused"  # not an error: a safety check said no


class AccountRefused(RefusedError):
    """--account-id: the credentials are for another account (carries who they are)."""

    def __init__(self, what: str, *, identity: object, where: str = "", hint: str = "",
                 details: tuple[str, ...] = ()) -> None:
        super().__init__(what, where=where, hint=hint, details=details)
        self.identity = identity


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl-C (clean summary, JSON), but exit 143."""


class IncompleteDiscoveryError(KsdeleteError):
    """Discovery could not account for every key it listed, so the snapshot would be a guess.

    Raised instead of returning a snapshot that may miss keys of the store: every key ListKeys
    returned must end up a member, elsewhere, gone or undescribable, exactly once.
    """

    code = "incomplete-discovery"


class IncompleteListingError(IncompleteDiscoveryError):
    """A paginated listing (ListKeys, ListAliases) ended without proof that it was complete:
    a page said `Truncated` but gave no `NextMarker`, or a `NextMarker` came back twice."""

    code = "incomplete-listing"

    def __init__(self, what: str, *, operation: str, pages: int, where: str = "",
                 hint: str = "") -> None:
        super().__init__(what, where=where or operation, hint=hint)
        self.operation = operation
        self.pages = pages


# A file system with no room left for ksdelete's state (journal, locks, cache).
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def os_reason(exc: OSError) -> str:
    """Why a file operation failed, as an operator reads it: a full disk says so."""
    text = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return f"the disk is full ({text})"
    if exc.errno == errno.EDQUOT:
        return f"the disk quota is used up ({text})"
    return text


def disk_full_hint(path: object) -> str:
    """What to do about a full disk under `path`."""
    return (f"Free space on the file system that holds {path} (see df -h), or pass --journal "
            "PATH on another one (the locks and the cache live beside it); then run again")


# ---- what AWS's error codes mean to ksdelete ------------------------------------------------

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
SERVER_ERROR_CODES = frozenset(
    {"KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
     "InternalFailure", "ServiceUnavailable"}
)

# AWS error codes -> the typed errors the rest of ksdelete sees.
ERROR_TYPES: dict[str, type[AwsError]] = {
    "NotFoundException": KeyNotFound,
    "UnknownOperationException": OperationUnsupported,
    "KMSInvalidStateException": KeyInvalidState,
    "CustomKeyStoreInvalidStateException": StoreInvalidState,
    "CustomKeyStoreHasCMKsException": StoreHasKeys,
    "AccessDeniedException": AccessDenied,
    **dict.fromkeys(THROTTLING_CODES, Throttled),
}


def typed(operation: str, code: str, message: str) -> type[AwsError]:
    """The error class an AWS error code (of this operation, with this message) raises."""
    error = ERROR_TYPES.get(code, AwsError)
    if error is KeyInvalidState and operation == "ScheduleKeyDeletion" \
            and "pending deletion" in message:
        return KeyAlreadyPendingDeletion
    return error


def retryable(exc: BaseException) -> bool:
    """Whether a call that failed this way is worth trying again (throttling, AWS's own
    failures, a connection that could not be made)."""
    if isinstance(exc, AwsError):
        return exc.aws_code in THROTTLING_CODES or exc.aws_code in SERVER_ERROR_CODES or (
            exc.aws_code == "ConnectionError"
        )
    return False
