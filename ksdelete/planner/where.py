"""Which account and which KMS endpoint: the guards that come before the first KMS call."""

from __future__ import annotations

from urllib.parse import urlsplit

from ksdelete.models import (
    Identity,
    KeyStore,
    Refusal,
    RefusalReason,
)


def account_refusal(identity: Identity | None, allowed: frozenset[str]) -> Refusal | None:
    """--account-id: the credentials must be for one of these accounts. The CLI asks this
    right after GetCallerIdentity, before any other call; every plan asks it again."""
    if not allowed:
        return None
    account = identity.account if identity else "unknown"
    if account in allowed:
        return None
    wanted = next(iter(allowed)) if len(allowed) == 1 else "one it allows"
    return Refusal(
        RefusalReason.ACCOUNT_NOT_ALLOWED,
        f"the credentials are for account {account}, not {wanted} (--account-id)",
        "Use credentials for the intended account",
        (f"--account-id allows: {', '.join(sorted(allowed))}",) if len(allowed) > 1 else (),
    )


def store_refusal(store: KeyStore, expect_name: str | None, expect_type: str | None
                  ) -> Refusal | None:
    """A fleet target's identity proof: the store with the file's ID in the file's account
    and Region must have the name and type the file says (a reused ID-shaped typo, or a
    store that is not the one reviewed). Asked right after the store is described, before
    anything else about it."""
    wrong: list[tuple[str, str]] = []
    if expect_name is not None and store.name != expect_name:
        wrong.append(("name", f"its name is {store.name!r}; the file expects {expect_name!r}"))
    if expect_type is not None and store.type.value != expect_type:
        wrong.append(("type", f"its type is {store.type.value}; the file expects {expect_type}"))
    if not wrong:
        return None
    return Refusal(
        RefusalReason.STORE_NOT_AS_EXPECTED,
        f"{store.id} is not the store the file names (its {' and '.join(w for w, _ in wrong)})",
        "Check the fleet file's target",
        tuple(line for _, line in wrong),
    )


# Hosts of AWS's own KMS endpoints (public, FIPS, dual-stack, VPC endpoints, China).
AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def service_endpoint(url: str | None) -> str | None:
    """Which KMS a saved plan names: None for AWS's own endpoints (any host under AWS's
    domains), else the URL normalised (lower-case scheme and host, no default port, no
    trailing slash), so that two spellings of one endpoint compare equal."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if host.endswith(AWS_DOMAINS):
        return None
    scheme = parts.scheme.lower()
    port = parts.port
    if port is None or (scheme, port) in (("https", 443), ("http", 80)):
        netloc = f"[{host}]" if ":" in host else host
    else:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def endpoint_refusal(planned: str | None, actual: str | None) -> Refusal | None:
    """`apply`: a saved plan acts only on the KMS it was made against. Anywhere else its
    stores are unknown (and would be reported deleted) or are someone else's. Asked before
    any AWS call."""
    planned, actual = service_endpoint(planned), service_endpoint(actual)
    if planned == actual:
        return None
    made = planned or "AWS's own KMS endpoint"
    now = actual or "AWS's own KMS endpoint"
    return Refusal(
        RefusalReason.OTHER_ENDPOINT,
        "the plan was made against another KMS endpoint than this run would use",
        "Run with --endpoint-url set to the plan's endpoint" if planned else
        "Run without --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_KMS",
        (f"the plan's endpoint: {made}", f"this run's endpoint: {now}",
         "check --endpoint-url, AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_KMS"),
    )
