"""Typed KMS calls, paced under the KMS request quotas: with ksdelete.sessions (which makes
the boto3 sessions it is given), the only module that imports boto3.

AWS error codes become `AwsError` (carrying the code) at this boundary. The gateway is thread
safe: one boto3 client (thread safe for calls), paced by its scope's pacer (ksdelete.pacing: one
token bucket per operation, shared by every gateway of the same account and Region).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import boto3
import botocore
import botocore.config
import botocore.exceptions

from ksdelete import __version__
from ksdelete.errors import (
    THROTTLING_CODES,
    AwsError,
    CredentialsError,
    IncompleteListingError,
    KsdeleteError,
    OperationUnsupported,
    UsageError,
    retryable,
    typed,
)
from ksdelete.models import Grant, Identity, Key, KeyStore, Usage, WitnessedKey
from ksdelete.pacing import MAX_CONNECTIONS, Pacer
from ksdelete.retry import RetryObserver, RetryPolicy, call_with_retries
from ksdelete.scope import is_local
from ksdelete.shapes import key_from_metadata, store_from_entry

log = logging.getLogger("ksdelete.gateway")

# Test-only (docs/development.md): "1" against an endpoint on this machine (the emulator, whose
# quotas are off unless asked for) drops the pacing and the backoff between retries of a call.
UNPACED_ENV = "KSDELETE_TEST_UNPACED"

# The first boto3 (and botocore, same version) whose model has the operation.
FIRST_BOTO3: dict[str, str] = {"GetKeyLastUsage": "1.42.97"}

# The IAM actions each gateway method needs; `ksdelete iam-policy` is built from this table.
PERMISSIONS: dict[str, str] = {
    "describe_store": "kms:DescribeCustomKeyStores",
    "list_stores": "kms:DescribeCustomKeyStores",  # `fleet inventory`
    "list_keys": "kms:ListKeys",
    "describe_key": "kms:DescribeKey",
    "list_aliases": "kms:ListAliases",
    "schedule_key_deletion": "kms:ScheduleKeyDeletion",
    "cancel_key_deletion": "kms:CancelKeyDeletion",
    "enable_key": "kms:EnableKey",
    "list_resource_tags": "kms:ListResourceTags",
    "tag_resource": "kms:TagResource",
    "untag_resource": "kms:UntagResource",
    "connect_store": "kms:ConnectCustomKeyStore",
    "disconnect_store": "kms:DisconnectCustomKeyStore",
    "delete_store": "kms:DeleteCustomKeyStore",
    "get_key_last_usage": "kms:GetKeyLastUsage",
    "list_grants": "kms:ListGrants",
    "disable_key": "kms:DisableKey",
    "lookup_events": "cloudtrail:LookupEvents",
    # `ksdelete probe` only: its one throwaway key (tags given at creation need TagResource).
    "create_probe_key": "kms:CreateKey",
    "encrypt": "kms:Encrypt",
    "lookup_page": "cloudtrail:LookupEvents",
    "filter_log_events": "logs:FilterLogEvents",
    # Fleet mode's second witness (the hub identity, once per run).
    "select_aggregate_keys": "config:SelectAggregateResourceConfig",
}
# SelectAggregateResourceConfig: at most 4096 characters of expression; store IDs per query.
STORES_PER_QUERY = 100
WITNESS_QUERY = ("SELECT accountId, awsRegion, resourceId, configuration.customKeyStoreId "
                 "WHERE resourceType = 'AWS::KMS::Key' AND configuration.customKeyStoreId "
                 "IN ({})")


@dataclass(frozen=True)
class Called:
    """The outcome of a mutating call, for the journal and the report."""

    response: dict[str, Any]
    request_id: str | None


def _error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


class Gateway:
    """Typed KMS operations for one account and Region."""

    def __init__(
        self,
        session: boto3.session.Session,
        region: str,
        endpoint_url: str | None,
        pacer: Pacer,
        *,
        policy: RetryPolicy | None = None,
        on_retry: RetryObserver | None = None,
    ) -> None:
        """A gateway over a session made elsewhere (ksdelete.sessions), in one Region, at one
        KMS endpoint (None: botocore's for the Region), paced by `pacer`: the scope's, shared
        with every other gateway of the same account, Region and endpoint."""
        self.policy = policy or RetryPolicy()
        self.on_retry: RetryObserver = on_retry or (lambda *_: None)
        self.region: str = region
        config = botocore.config.Config(
            # ksdelete retries throttling and 5xx itself (see retry.py) so every retry is
            # visible; botocore is set explicitly to make exactly one attempt.
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=60,
            # One connection per discovery worker at most (discover.py sizes its pool to
            # this), so connections are reused rather than opened (a TLS handshake each) and
            # dropped when the pool is full.
            max_pool_connections=MAX_CONNECTIONS,
            user_agent_extra=f"ksdelete/{__version__}",
        )
        try:
            self._kms = session.client("kms", region_name=region,
                                       endpoint_url=endpoint_url, config=config)
            self._sts = session.client(
                "sts", region_name=region,
                endpoint_url=_sts_endpoint(endpoint_url),
                config=botocore.config.Config(
                    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5,
                    read_timeout=10,
                ),
            )
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise UsageError(f"cannot set up the AWS client: {exc}", where="--region/--profile",
                             hint="Check the Region, the profile and --endpoint-url") from exc
        unpaced = os.environ.get(UNPACED_ENV) == "1" and is_local(self.endpoint_url)
        self.pacing = Pacer({}) if unpaced else pacer
        self._call_policy = replace(self.policy, sleep=_no_wait) if unpaced else self.policy
        self._session, self._config = session, config
        self._endpoint_given = endpoint_url is not None
        self._trail: Any = None
        self._logs: Any = None
        self._config_client: Any = None
        self._clock_lock = threading.Lock()
        self._server_offset: float | None = None
        self._date_header: str | None = None
        self._date_parsed: float | None = None

    @property
    def endpoint_url(self) -> str:
        return str(self._kms.meta.endpoint_url)

    @property
    def endpoint_configured(self) -> bool:
        """Whether some setting chose the KMS endpoint (--endpoint-url, AWS_ENDPOINT_URL,
        AWS_ENDPOINT_URL_KMS, the profile's endpoint_url), rather than botocore's default for
        the Region."""
        if self._endpoint_given or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get(
                "AWS_ENDPOINT_URL_KMS"):
            return True
        default = f"https://kms.{self.region}.amazonaws.com"
        return self.endpoint_url.rstrip("/") not in (default, default + ".cn")

    # ---- plumbing -------------------------------------------------------------------------

    def _call(self, operation: str, client: Any = None, **params: Any) -> Called:
        client = client or self._kms
        needs = f"boto3 >= {FIRST_BOTO3[operation]}" if operation in FIRST_BOTO3 else \
            "a newer boto3"
        try:
            method = getattr(client, _snake(operation))
        except AttributeError as exc:  # not in this botocore's model
            raise OperationUnsupported(
                f"botocore {botocore.__version__} has no {operation}: it needs {needs} "
                f"(pip install -U 'boto3>={FIRST_BOTO3.get(operation, boto3.__version__)}')",
                operation=operation, aws_code="OperationNotInBotocore", where=operation,
            ) from exc
        bucket = self.pacing.buckets.get(operation)

        def once() -> Called:
            if bucket is not None:
                bucket.acquire()
            log.debug("call %s %s", operation, params)
            try:
                response: dict[str, Any] = method(**params)
            except botocore.exceptions.ClientError as exc:
                meta = exc.response.get("ResponseMetadata", {})
                code = _error_code(exc) or "Unknown"
                log.debug("%s answered %s (request %s)", operation, code, meta.get("RequestId"))
                message = str(exc.response.get("Error", {}).get("Message") or code)
                if code == "UnknownOperationException":  # an endpoint older than the call
                    message = (f"this KMS endpoint does not know {operation} ({code}); it "
                               f"needs a KMS that has it, such as AWS's, and {needs}")
                if bucket is not None and code in THROTTLING_CODES:
                    bucket.throttled()
                raise typed(operation, code, message)(
                    message,
                    operation=operation, aws_code=code, request_id=meta.get("RequestId"),
                    where=operation,
                ) from exc
            except (
                botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ConnectTimeoutError,
            ) as exc:
                raise AwsError(
                    f"cannot reach AWS: {exc}", operation=operation, aws_code="ConnectionError",
                    where=operation, hint="Check the network, --region and --endpoint-url",
                ) from exc
            except botocore.exceptions.ParamValidationError as exc:
                detail = " ".join(str(exc).split())
                raise UsageError(f"invalid input for {operation}: {detail}", where=operation,
                                 hint="Check the values given on the command line") from exc
            except botocore.exceptions.NoCredentialsError as exc:
                raise CredentialsError(
                    "no AWS credentials found", where=operation,
                    hint="Set AWS_PROFILE / --profile or AWS_ACCESS_KEY_ID",
                ) from exc
            if bucket is not None:
                bucket.succeeded()
            meta = response.get("ResponseMetadata", {})
            log.debug("%s ok (request %s)", operation, meta.get("RequestId"))
            self._note_server_date(meta.get("HTTPHeaders", {}).get("date"))
            return Called(response, meta.get("RequestId"))

        return call_with_retries(
            once, call=operation, retryable=retryable, policy=self._call_policy,
            on_retry=self.on_retry,
            unreachable=lambda exc: getattr(exc, "aws_code", "") == "ConnectionError",
        )

    def _note_server_date(self, header: str | None) -> None:
        if not header:
            return
        with self._clock_lock:
            # 1 s resolution: most answers repeat the previous Date, parsed once.
            parsed = self._date_parsed if header == self._date_header else None
        if parsed is None:
            try:
                parsed = parsedate_to_datetime(header).timestamp()
            except (TypeError, ValueError):
                return
        with self._clock_lock:
            self._date_header, self._date_parsed = header, parsed
            self._server_offset = parsed - time.time()

    def server_now(self) -> datetime:
        """AWS's idea of now, from the Date header of the latest response (1 s resolution)."""
        with self._clock_lock:
            offset = self._server_offset or 0.0
        return datetime.fromtimestamp(time.time() + offset, UTC)

    # ---- key stores -------------------------------------------------------------------------

    def describe_store(self, *, store_id: str | None = None, name: str | None = None
                       ) -> KeyStore | None:
        """The store with this ID or name, or None if AWS says it does not exist."""
        params = {"CustomKeyStoreId": store_id} if store_id else {"CustomKeyStoreName": name}
        try:
            called = self._call("DescribeCustomKeyStores", **params)
        except AwsError as exc:
            if exc.aws_code == "CustomKeyStoreNotFoundException":
                return None
            raise
        entries = called.response.get("CustomKeyStores", [])
        return store_from_entry(entries[0]) if entries else None

    def list_stores(self) -> list[KeyStore]:
        """Every custom key store of the account and Region (`fleet inventory`)."""
        return [store_from_entry(entry)
                for page in self._pages("DescribeCustomKeyStores", 1000)
                for entry in page.get("CustomKeyStores", [])]

    def connect_store(self, store_id: str) -> Called:
        return self._call("ConnectCustomKeyStore", CustomKeyStoreId=store_id)

    def disconnect_store(self, store_id: str) -> Called:
        return self._call("DisconnectCustomKeyStore", CustomKeyStoreId=store_id)

    def delete_store(self, store_id: str) -> Called:
        return self._call("DeleteCustomKeyStore", CustomKeyStoreId=store_id)

    # ---- keys -------------------------------------------------------------------------------

    def list_keys(self) -> Iterator[list[tuple[str, str]]]:
        """Every key in the account and Region, one page (up to 1000) at a time.

        Raises IncompleteListingError if the pages do not prove the listing complete.
        """
        for page in self._pages("ListKeys", 1000):
            yield [(k["KeyId"], k["KeyArn"]) for k in page.get("Keys", [])]

    def describe_key(self, key_id: str) -> dict[str, Any]:
        """KeyMetadata of one key; raises AwsError (NotFoundException, AccessDeniedException...)."""
        metadata: dict[str, Any] = self._call("DescribeKey", KeyId=key_id).response["KeyMetadata"]
        return metadata

    def list_aliases(self) -> dict[str, list[str]]:
        """Alias names by target key ID, for the whole account and Region."""
        aliases: dict[str, list[str]] = {}
        for page in self._pages("ListAliases", 100):
            for alias in page.get("Aliases", []):
                target = alias.get("TargetKeyId")
                if target:
                    aliases.setdefault(target, []).append(alias["AliasName"])
        return aliases

    def _pages(self, operation: str, limit: int, **fixed: Any) -> Iterator[dict[str, Any]]:
        """Every page of a Marker/NextMarker/Truncated listing, checked for completeness.

        The listing ends only on a page with `Truncated` false. A truncated page without a
        `NextMarker`, or a `NextMarker` already used, would otherwise end (or loop) the listing
        early and silently; it raises IncompleteListingError instead.
        """
        markers: set[str] = set()
        marker: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {**fixed, "Limit": limit}
            if marker is not None:
                params["Marker"] = marker
            page = self._call(operation, **params).response
            pages += 1
            yield page
            if not page.get("Truncated"):
                return
            marker = page.get("NextMarker")
            if not marker:
                raise IncompleteListingError(
                    f"{operation} page {pages} says the listing is truncated but gives no "
                    "NextMarker, so the rest cannot be read",
                    operation=operation, pages=pages, where=f"{operation}, region {self.region}",
                    hint="Nothing was changed; run again later",
                )
            if marker in markers:
                raise IncompleteListingError(
                    f"{operation} page {pages} returned a NextMarker already used, so the "
                    "listing would loop",
                    operation=operation, pages=pages, where=f"{operation}, region {self.region}",
                    hint="Nothing was changed; run again later",
                )
            markers.add(marker)

    def schedule_key_deletion(self, key_id: str, days: int) -> Called:
        return self._call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=days)

    def cancel_key_deletion(self, key_id: str) -> Called:
        return self._call("CancelKeyDeletion", KeyId=key_id)

    def enable_key(self, key_id: str) -> Called:
        return self._call("EnableKey", KeyId=key_id)

    def list_resource_tags(self, key_id: str) -> dict[str, str]:
        """Every tag of one key (ListResourceTags works in every key state); a listing cut
        short raises IncompleteListingError (not_protected must not pass on part of it)."""
        tags: dict[str, str] = {}
        for page in self._pages("ListResourceTags", 50, KeyId=key_id):
            tags.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
        return tags

    def tag_resource(self, key_id: str, tags: dict[str, str]) -> Called:
        """Fails (KeyInvalidState) on a key pending deletion, works in every other state."""
        return self._call("TagResource", KeyId=key_id,
                          Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])

    def untag_resource(self, key_id: str, names: list[str]) -> Called:
        return self._call("UntagResource", KeyId=key_id, TagKeys=names)

    def disable_key(self, key_id: str) -> Called:
        return self._call("DisableKey", KeyId=key_id)

    def create_probe_key(self, description: str, tags: dict[str, str]) -> Key:
        """`ksdelete probe`: a standard symmetric AWS_KMS key, described and tagged as the
        probe's (the only key ksdelete ever creates)."""
        response = self._call(
            "CreateKey", Description=description, KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT", Origin="AWS_KMS",
            Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()]).response
        meta = response.get("KeyMetadata") or {}
        expected = {"Description": description, "Origin": "AWS_KMS", "KeyState": "Enabled",
                    "KeyManager": "CUSTOMER", "CustomKeyStoreId": None}
        odd = sorted(f"{field} {meta.get(field)!r}" for field, value in expected.items()
                     if meta.get(field) != value)
        if odd or not meta.get("KeyId"):
            # The probe uses and schedules the key it gets back: never one it did not make.
            raise KsdeleteError(
                f"CreateKey answered a key that is not the probe's new key "
                f"({meta.get('KeyId') or 'no KeyId'}: {', '.join(odd) or 'no KeyId'}); it was "
                "not touched", where="probe",
                hint="Look for a key tagged ksdelete:probe in this account and Region and "
                     "schedule its deletion if it exists")
        return key_from_metadata(meta)

    def encrypt(self, key_id: str, plaintext: bytes) -> Called:
        """One cryptographic call (`ksdelete probe` uses its own key only)."""
        return self._call("Encrypt", KeyId=key_id, Plaintext=plaintext)

    def get_key_last_usage(self, key_id: str) -> Usage:
        """The last successful cryptographic use KMS recorded for the key (GetKeyLastUsage)."""
        response = self._call("GetKeyLastUsage", KeyId=key_id).response
        last = response.get("KeyLastUsage") or {}
        return Usage(tracking_start=response.get("TrackingStartDate"),
                     last_used=last.get("Timestamp"), operation=last.get("Operation"),
                     event_id=last.get("CloudTrailEventId"))

    def list_grants(self, key_id: str) -> tuple[Grant, ...]:
        """Every grant on one key (ListGrants works in every key state); a listing cut
        short raises IncompleteListingError (no_service_grants must not pass on part of it)."""
        grants: list[Grant] = []
        for page in self._pages("ListGrants", 100, KeyId=key_id):
            grants += [Grant(grant_id=g.get("GrantId", ""), grantee=g.get("GranteePrincipal", ""),
                             operations=tuple(g.get("Operations", [])), name=g.get("Name", ""),
                             retiring=g.get("RetiringPrincipal", ""))
                       for g in page.get("Grants", [])]
        return tuple(grants)

    def lookup_events(self, attribute: tuple[str, str], start: datetime,
                      end: datetime | None = None) -> Iterator[dict[str, Any]]:
        """CloudTrail Event history (LookupEvents), newest first: each event's record (the
        parsed CloudTrailEvent JSON). One lookup attribute, as the API allows. The time range
        is fixed once: a NextToken is valid only with the same parameters."""
        token: str | None = None
        end = end or self.server_now()
        while True:
            records, token = self.lookup_page(attribute, start, end, token)
            yield from records
            if not token:
                return

    def lookup_page(self, attribute: tuple[str, str], start: datetime, end: datetime,
                    token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of LookupEvents (50 events, newest first): the records (each event's
        parsed CloudTrailEvent JSON) and the NextToken (None: the end). A token is valid only
        with the same attribute and time range."""
        params: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": attribute[0], "AttributeValue": attribute[1]}],
            "StartTime": start, "EndTime": end, "MaxResults": 50}
        if token:
            params["NextToken"] = token
        page = self._call("LookupEvents", self._cloudtrail(), **params).response
        records: list[dict[str, Any]] = []
        for event in page.get("Events", []):
            try:
                record = json.loads(event.get("CloudTrailEvent") or "{}")
            except ValueError:
                record = {}
            if isinstance(record, dict):
                records.append(record)
        following = page.get("NextToken")
        return records, str(following) if following else None

    def filter_log_events(self, group: str, pattern: str, start: datetime, end: datetime,
                          token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of CloudWatch Logs FilterLogEvents over a log group a CloudTrail trail
        delivers to (oldest first, filtered by AWS): the CloudTrail records (each event's
        message, parsed) and the nextToken (None: the end)."""
        params: dict[str, Any] = {
            "logGroupName": group, "filterPattern": pattern,
            "startTime": int(start.timestamp() * 1000), "endTime": int(end.timestamp() * 1000)}
        if token:
            params["nextToken"] = token
        with self._clock_lock:
            if self._logs is None:
                self._logs = self._session.client(
                    "logs", endpoint_url=_local_endpoint(self.endpoint_url),
                    config=self._config)
        page = self._call("FilterLogEvents", self._logs, **params).response
        records: list[dict[str, Any]] = []
        for event in page.get("events", []):
            try:
                record = json.loads(event.get("message") or "{}")
            except ValueError:
                record = {}
            if isinstance(record, dict):
                records.append(record)
        following = page.get("nextToken")
        return records, str(following) if following else None

    def select_aggregate_keys(self, aggregator: str, store_ids: Sequence[str]
                              ) -> list[WitnessedKey]:
        """AWS Config (fleet mode's second witness): the keys the aggregator (in this
        gateway's Region, with its credentials: the hub's) attributes to these custom key
        stores (IDs as the fleet file's reader checked them), in every account and Region it
        aggregates. One query per 100 stores, every page."""
        with self._clock_lock:
            if self._config_client is None:
                self._config_client = self._session.client(
                    "config", region_name=self.region,
                    endpoint_url=_local_endpoint(self.endpoint_url), config=self._config)
        out: list[WitnessedKey] = []
        wanted = sorted(set(store_ids))
        for start in range(0, len(wanted), STORES_PER_QUERY):
            params: dict[str, Any] = {"ConfigurationAggregatorName": aggregator, "Limit": 100,
                                      "Expression": WITNESS_QUERY.format(", ".join(
                                          f"'{s}'" for s in
                                          wanted[start:start + STORES_PER_QUERY]))}
            while True:
                page = self._call("SelectAggregateResourceConfig", self._config_client,
                                  **params).response
                try:  # each row a JSON object of the fields asked for
                    out += [WitnessedKey(i["accountId"], i["awsRegion"], i["resourceId"],
                                         i["configuration"]["customKeyStoreId"])
                            for i in map(json.loads, page.get("Results", []))]
                except (ValueError, KeyError, TypeError) as exc:
                    raise AwsError(f"AWS Config answered a row of another shape: {exc!r}",
                                   operation="SelectAggregateResourceConfig",
                                   aws_code="MalformedResult", where=aggregator) from exc
                if not page.get("NextToken"):
                    break
                params["NextToken"] = page["NextToken"]
        return out

    def _cloudtrail(self) -> Any:
        """The CloudTrail client, made on first use (only the gates and the watch need it)."""
        with self._clock_lock:
            if self._trail is None:
                self._trail = self._session.client(
                    "cloudtrail", region_name=self.region,
                    endpoint_url=_local_endpoint(self.endpoint_url),
                    config=self._config)
            return self._trail

    # ---- identity ---------------------------------------------------------------------------

    def identity(self) -> Identity:
        """Account, caller ARN and Region (GetCallerIdentity: no IAM permission needed).

        Every run needs them: the account guard, the journal's scope and the plan shown to
        the operator. Without them nothing is safe to do, so failing to learn them is an error.
        """
        try:
            called = self._call("GetCallerIdentity", self._sts)
        except AwsError as exc:
            if exc.aws_code == "ConnectionError":
                raise  # its hint names --region and --endpoint-url
            raise CredentialsError(
                f"cannot tell which AWS account these credentials belong to: {exc.what}",
                where="sts:GetCallerIdentity",
                hint="Check the credentials (--profile, AWS_PROFILE) and the network",
            ) from exc
        return Identity(account=str(called.response.get("Account", "")),
                        region=self.region, caller_arn=str(called.response.get("Arn", "")))


def _no_wait(seconds: float) -> None:
    return None


def _sts_endpoint(kms_endpoint: str | None) -> str | None:
    """STS normally follows boto3's own settings (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL).

    A KMS --endpoint-url on this machine (the emulator) serves STS too; any other
    --endpoint-url (a VPC endpoint, say) is for KMS only.
    """
    if not kms_endpoint or os.environ.get("AWS_ENDPOINT_URL_STS"):
        return None
    return kms_endpoint if is_local(kms_endpoint) else None


def _local_endpoint(kms_endpoint: str | None) -> str | None:
    """The emulator serves every service on its one endpoint; elsewhere (AWS, or a KMS VPC
    endpoint) other services use boto3's own settings."""
    return kms_endpoint if kms_endpoint and is_local(kms_endpoint) else None


def _snake(operation: str) -> str:
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
