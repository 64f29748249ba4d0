"""Gateway listings end only when AWS says so: a truncated page without a NextMarker, or a
NextMarker seen before, is an error (exit 1), never the end of the listing.

These are AWS misbehaving, which the emulator (a model of AWS as documented) does not do, so
the pages come from botocore's Stubber on the real Gateway's client: the real `_call` path runs,
and the Stubber checks the request parameters (Limit, Marker) and the canned pages against the
KMS service model. The well-behaved paging itself is covered over HTTP by the emulator tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from ksdelete.errors import ExitStatus, IncompleteDiscoveryError, IncompleteListingError
from ksdelete.gateway import Gateway
from ksdelete.retry import RetryPolicy
from ksdelete.scope import ScopeRequest
from ksdelete.sessions import open_gateway

ARN = "arn:aws:kms:us-east-1:123456789012:key/"


def key_page(*ids: str, marker: str | None = None, truncated: bool | None = None
             ) -> dict[str, Any]:
    page: dict[str, Any] = {"Keys": [{"KeyId": i, "KeyArn": ARN + i} for i in ids],
                            "Truncated": marker is not None if truncated is None else truncated}
    if marker is not None:
        page["NextMarker"] = marker
    return page


def alias_page(*pairs: tuple[str, str], marker: str | None = None,
               truncated: bool | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "Aliases": [{"AliasName": name, "AliasArn": f"arn:aws:kms:us-east-1:123456789012:{name}",
                     "TargetKeyId": target} for name, target in pairs],
        "Truncated": marker is not None if truncated is None else truncated,
    }
    if marker is not None:
        page["NextMarker"] = marker
    return page


@pytest.fixture
def stubbed() -> Iterator[tuple[Gateway, Stubber]]:
    # The endpoint is never contacted: the Stubber answers before anything is sent.
    gateway = open_gateway(ScopeRequest(region="us-east-1", endpoint_url="http://127.0.0.1:9"),
                      policy=RetryPolicy(sleep=lambda _: None))
    with Stubber(gateway._kms) as stubber:
        yield gateway, stubber
        stubber.assert_no_pending_responses()


def params(limit: int, marker: str | None = None) -> dict[str, Any]:
    return {"Limit": limit} if marker is None else {"Limit": limit, "Marker": marker}


def test_list_keys_follows_markers_to_the_last_page(stubbed: tuple[Gateway, Stubber]) -> None:
    gateway, stub = stubbed
    stub.add_response("list_keys", key_page("k1", "k2", marker="m1"), params(1000))
    # An empty but truncated page (AWS does this with OTHER_ACCOUNTS_VIA_RAM) is not the end.
    stub.add_response("list_keys", key_page(marker="m2"), params(1000, "m1"))
    stub.add_response("list_keys", key_page("k3"), params(1000, "m2"))
    pages = list(gateway.list_keys())
    assert pages == [[("k1", ARN + "k1"), ("k2", ARN + "k2")], [], [("k3", ARN + "k3")]]


def test_list_keys_ends_on_a_page_that_is_not_truncated(stubbed: tuple[Gateway, Stubber]
                                                        ) -> None:
    gateway, stub = stubbed
    # Truncated false ends the listing, even with a (meaningless) NextMarker.
    stub.add_response("list_keys", key_page("k1", marker="m1", truncated=False), params(1000))
    assert list(gateway.list_keys()) == [[("k1", ARN + "k1")]]


def test_list_keys_truncated_without_a_marker_is_an_error(stubbed: tuple[Gateway, Stubber]
                                                          ) -> None:
    gateway, stub = stubbed
    stub.add_response("list_keys", key_page("k1", marker="m1"), params(1000))
    stub.add_response("list_keys", key_page("k2", truncated=True), params(1000, "m1"))
    pages = gateway.list_keys()
    assert next(pages) == [("k1", ARN + "k1")]  # pages still stream...
    assert next(pages) == [("k2", ARN + "k2")]
    with pytest.raises(IncompleteListingError) as raised:
        next(pages)  # ...but the listing does not end quietly after the broken page
    exc = raised.value
    assert isinstance(exc, IncompleteDiscoveryError)
    assert exc.code == "incomplete-listing" and exc.exit_status is ExitStatus.ERROR
    assert exc.operation == "ListKeys" and exc.pages == 2
    assert "no NextMarker" in str(exc) and "ListKeys" in str(exc)


def test_list_keys_marker_loop_is_an_error(stubbed: tuple[Gateway, Stubber]) -> None:
    gateway, stub = stubbed
    stub.add_response("list_keys", key_page("k1", marker="m1"), params(1000))
    stub.add_response("list_keys", key_page("k2", marker="m2"), params(1000, "m1"))
    stub.add_response("list_keys", key_page("k3", marker="m1"), params(1000, "m2"))
    with pytest.raises(IncompleteListingError, match="already used") as raised:
        list(gateway.list_keys())
    assert raised.value.pages == 3


def test_list_keys_marker_repeated_at_once_is_an_error(stubbed: tuple[Gateway, Stubber]) -> None:
    gateway, stub = stubbed
    stub.add_response("list_keys", key_page("k1", marker="m1"), params(1000))
    stub.add_response("list_keys", key_page("k1", marker="m1"), params(1000, "m1"))
    with pytest.raises(IncompleteListingError, match="already used"):
        list(gateway.list_keys())


def test_list_aliases_pages_and_checks_markers_too(stubbed: tuple[Gateway, Stubber]) -> None:
    gateway, stub = stubbed
    stub.add_response("list_aliases", alias_page(("alias/a", "k1"), marker="m1"), params(100))
    stub.add_response("list_aliases", alias_page(("alias/b", "k1"), ("alias/c", "k2")),
                      params(100, "m1"))
    assert gateway.list_aliases() == {"k1": ["alias/a", "alias/b"], "k2": ["alias/c"]}

    stub.add_response("list_aliases", alias_page(("alias/a", "k1"), marker="m1"), params(100))
    stub.add_response("list_aliases", alias_page(truncated=True), params(100, "m1"))
    with pytest.raises(IncompleteListingError, match="no NextMarker") as raised:
        gateway.list_aliases()
    assert raised.value.operation == "ListAliases"

    stub.add_response("list_aliases", alias_page(marker="m1"), params(100))
    stub.add_response("list_aliases", alias_page(marker="m1"), params(100, "m1"))
    with pytest.raises(IncompleteListingError, match="already used"):
        gateway.list_aliases()


def test_tags_and_grants_read_through_the_same_fail_closed_pager(
        stubbed: tuple[Gateway, Stubber]) -> None:
    """not_protected and no_service_grants must never pass on a listing cut short."""
    gateway, stub = stubbed
    key = ARN + "k1"

    def tags(*pairs: tuple[str, str], marker: str | None = None,
             truncated: bool | None = None) -> dict[str, Any]:
        page: dict[str, Any] = {"Tags": [{"TagKey": k, "TagValue": v} for k, v in pairs],
                                "Truncated": marker is not None if truncated is None
                                else truncated}
        if marker is not None:
            page["NextMarker"] = marker
        return page

    def grants(*names: str, marker: str | None = None,
               truncated: bool | None = None) -> dict[str, Any]:
        page: dict[str, Any] = {
            "Grants": [{"GrantId": n, "GranteePrincipal": "rds.amazonaws.com", "Name": n,
                        "Operations": ["Decrypt"]} for n in names],
            "Truncated": marker is not None if truncated is None else truncated}
        if marker is not None:
            page["NextMarker"] = marker
        return page

    def p(limit: int, marker: str | None = None) -> dict[str, Any]:
        return {"KeyId": key, **params(limit, marker)}

    # Well-behaved paging still reads everything.
    stub.add_response("list_resource_tags", tags(("a", "1"), marker="m1"), p(50))
    stub.add_response("list_resource_tags", tags(("b", "2")), p(50, "m1"))
    assert gateway.list_resource_tags(key) == {"a": "1", "b": "2"}
    # Truncated without a NextMarker: an error, not "no more tags".
    stub.add_response("list_resource_tags", tags(("a", "1"), marker="m1"), p(50))
    stub.add_response("list_resource_tags", tags(truncated=True), p(50, "m1"))
    with pytest.raises(IncompleteListingError, match="no NextMarker") as raised:
        gateway.list_resource_tags(key)
    assert raised.value.operation == "ListResourceTags"
    stub.add_response("list_resource_tags", tags(marker="m1"), p(50))
    stub.add_response("list_resource_tags", tags(marker="m1"), p(50, "m1"))
    with pytest.raises(IncompleteListingError, match="already used"):
        gateway.list_resource_tags(key)

    stub.add_response("list_grants", grants("g1", marker="m1"), p(100))
    stub.add_response("list_grants", grants("g2"), p(100, "m1"))
    assert [g.grant_id for g in gateway.list_grants(key)] == ["g1", "g2"]
    stub.add_response("list_grants", grants("g1", truncated=True), p(100))
    with pytest.raises(IncompleteListingError, match="no NextMarker") as raised:
        gateway.list_grants(key)
    assert raised.value.operation == "ListGrants" and raised.value.pages == 1
