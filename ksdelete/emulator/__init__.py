"""KMS emulator for ksdelete: moto's KMS plus custom key stores, a clock and realism knobs.

Full reference: docs/emulator.md. In short:

* ``serve(host, port, config, ready)`` runs the server (``python -m ksdelete.emulator`` /
  ``ksdelete emulator``); ``Emulator`` starts one as a child process (or a thread with
  ``in_process=True``) and drives its control API over HTTP.
* Knobs (``EmulatorConfig``; ``Emulator.configure`` / ``POST /_emulator/config`` at run time):
  ``latency_ms``, ``quotas`` ("aws": per-operation token buckets -> ThrottlingException 400),
  ``consistency_lag`` (stale reads of DescribeKey/ListKeys/ListAliases/DescribeCustomKeyStores),
  ``fault_rate`` (KMSInternalException 500; ``fault_operations`` limits it to some operations),
  ``unknown_operations`` (answered UnknownOperationException, as by an endpoint without them),
  ``time_scale``, ``deletion_lateness``,
  ``connect_seconds``, ``disconnect_seconds``, ``validate`` (botocore-model shape checks), ``seed``,
  ``key_usage_tracking_start``, ``last_usage_delay``, ``pending_deletion_crypto_error``,
  ``cloudtrail_resource_name``, ``cloudtrail_index_crypto`` (LookupEvents finds cryptographic
  events by ResourceName; AWS does not), ``cloudtrail_delay`` (emulated seconds before an event
  shows in LookupEvents), ``cloudtrail_log_group`` (a log group FilterLogEvents serves the
  Region's events from), ``principals`` (access key ID -> caller ARN; a principal of another
  account puts its caller's requests in that account: seed it with ``"account"``),
  ``tag_after_cancel_failures`` (TagResource right after a cancel still sees it pending),
  ``assume_role_deny``, ``assume_role_external_id``, ``assume_role_redirect`` (who may assume
  which role with STS AssumeRole, and where a role really lands), ``config_aggregators``,
  ``config_lag_seconds``, ``config_hide_keys`` (AWS Config's SelectAggregateResourceConfig:
  which aggregators exist, how far Config lags, keys it never lists), ``listkeys_hide`` (keys
  ListKeys leaves out: an incomplete scan).
* Control API under ``/_emulator/``: ``clock``, ``reset``, ``config``, ``seed``, ``state``,
  ``calls``, ``problems``, ``store-state``; never delayed, throttled or faulted.
* Modelled: the six custom key store operations with the state machine (CONNECTING/DISCONNECTING
  take emulated time; a store named ``*fail-connect*`` ends FAILED), keys in stores (Unavailable
  unless the store is CONNECTED, except PendingDeletion; hidden Enabled/Disabled restored on
  connect), AWS-exact ScheduleKeyDeletion/CancelKeyDeletion, real deletion when the emulated clock
  passes DeletionDate (+ lateness), ListKeys/ListAliases/DescribeCustomKeyStores/ListGrants paging,
  explicit Deny key policies -> AccessDeniedException, cryptographic operations refused by key
  state, GetKeyLastUsage, CloudTrail events of key-naming KMS calls (and DeleteKey with CloudHSM
  ``backingKeysDeletionStatus`` when a window ends) read with CloudTrail ``LookupEvents`` on the
  same endpoint, callers (CloudTrail userIdentity, STS GetCallerIdentity) from the access key,
  STS AssumeRole into any account (its credentials' calls land in that account), AWS Config
  SelectAggregateResourceConfig for the one query fleet mode sends (emulator.awsconfig).
* Not modelled: hot-key and per-store crypto throttling, stale writes, CloudHSM cluster / XKS proxy
  health checks beyond cluster and URI reuse, trails and event delivery delays.
"""

from __future__ import annotations

from .client import Emulator, EmulatorError
from .config import EmulatorConfig
from .server import serve

__all__ = ["Emulator", "EmulatorConfig", "EmulatorError", "serve"]
