"""Error classes that carry their exit status, and the exit status table itself."""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitStatus(IntEnum):
    """Documented exit codes (README, "Exit codes")."""

    OK = 0
    ERROR = 1
    USAGE = 2
    PENDING = 3
    REFUSED = 4
    INTERRUPTED = 130


class KsdeleteError(Exception):
    """An expected failure: says what went wrong, where, and what to do about it."""

    exit_status: ClassVar[ExitStatus] = ExitStatus.ERROR
    code: ClassVar[str] = "error"

    def __init__(self, what: str, *, where: str = "", hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = self.what
        if self.where:
            text += f" ({self.where})"
        if self.hint:
            text += f". {self.hint}"
        return text


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


class CredentialsError(KsdeleteError):
    code = "credentials"


class RefusedError(KsdeleteError):
    """A safety check stopped the run before anything was changed."""

    exit_status = ExitStatus.REFUSED
    code = "refused"


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
