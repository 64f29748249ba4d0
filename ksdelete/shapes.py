"""KMS's answers as ksdelete's models: a DescribeCustomKeyStores entry becomes a KeyStore, a
DescribeKey KeyMetadata a Key. Pure (no boto3): discovery reads keys through it too."""

from __future__ import annotations

from typing import Any

from ksdelete.models import ConnectionState, Key, KeyStore, StoreType


def store_from_entry(entry: dict[str, Any]) -> KeyStore:
    store_type = entry.get("CustomKeyStoreType") or StoreType.CLOUDHSM.value
    return KeyStore(
        id=entry["CustomKeyStoreId"],
        name=entry.get("CustomKeyStoreName", ""),
        type=StoreType(store_type),
        connection_state=ConnectionState(entry["ConnectionState"]),
        connection_error_code=entry.get("ConnectionErrorCode"),
        cloudhsm_cluster_id=entry.get("CloudHsmClusterId"),
        creation_date=entry.get("CreationDate"),
    )


def key_from_metadata(metadata: dict[str, Any], aliases: tuple[str, ...] = ()) -> Key:
    return Key(
        id=metadata["KeyId"],
        arn=metadata.get("Arn", metadata["KeyId"]),
        state=metadata.get("KeyState", "Unknown"),
        custom_key_store_id=metadata.get("CustomKeyStoreId", ""),
        deletion_date=metadata.get("DeletionDate"),
        aliases=aliases,
        external_key_id=(metadata.get("XksKeyConfiguration") or {}).get("Id"),
        creation_date=metadata.get("CreationDate"),
    )
