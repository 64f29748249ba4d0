"""Asymmetric and multi-Region keys: GetPublicKey and ReplicateKey answer as AWS documents.

Both were found by running moto's own KMS test suite against the emulator (fidelity/).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ksdelete.emulator import Emulator

from .conftest import error_of


def _client(emulator: Emulator, region: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=emulator.endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def test_get_public_key_by_alias_or_arn_keeps_signing_algorithms(kms: Any) -> None:
    meta = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]
    kms.create_alias(AliasName="alias/signer", TargetKeyId=meta["KeyId"])
    alias_arn = next(
        a["AliasArn"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/signer"
    )
    for key_id in (meta["KeyId"], meta["Arn"], "alias/signer", alias_arn):
        answer = kms.get_public_key(KeyId=key_id)
        assert answer["SigningAlgorithms"] == meta["SigningAlgorithms"], key_id
        assert "EncryptionAlgorithms" not in answer, key_id
        # API reference: KeyId is "The Amazon Resource Name (key ARN) of the asymmetric KMS key".
        assert answer["KeyId"] == meta["Arn"], key_id
        assert (answer["KeySpec"], answer["KeyUsage"]) == ("RSA_2048", "SIGN_VERIFY")
        assert load_der_public_key(answer["PublicKey"]).key_size == 2048  # type: ignore[union-attr]


def test_get_public_key_of_encryption_and_symmetric_keys(kms: Any) -> None:
    rsa = kms.create_key(KeyUsage="ENCRYPT_DECRYPT", KeySpec="RSA_3072")["KeyMetadata"]
    answer = kms.get_public_key(KeyId=rsa["Arn"])
    assert answer["EncryptionAlgorithms"] == rsa["EncryptionAlgorithms"]
    assert "SigningAlgorithms" not in answer

    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as no_public_key:
        kms.get_public_key(KeyId=symmetric)
    assert error_of(no_public_key)[:2] == ("UnsupportedOperationException", 400)

    signer = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    kms.disable_key(KeyId=signer["KeyId"])
    with pytest.raises(kms.exceptions.DisabledException):
        kms.get_public_key(KeyId=signer["KeyId"])


def test_replicate_key_makes_a_replica(kms: Any, emulator: Emulator) -> None:
    west = _client(emulator, "us-west-1")
    primary = kms.create_key(MultiRegion=True)["KeyMetadata"]
    kms.create_alias(AliasName="alias/primary-only", TargetKeyId=primary["KeyId"])

    answer = kms.replicate_key(KeyId=primary["Arn"], ReplicaRegion="us-west-1")
    replica = answer["ReplicaKeyMetadata"]
    assert replica["KeyId"] == primary["KeyId"]
    assert replica["Arn"] == primary["Arn"].replace("us-east-1", "us-west-1")
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"

    described = west.describe_key(KeyId=replica["KeyId"])["KeyMetadata"]
    config = described["MultiRegionConfiguration"]
    assert config["MultiRegionKeyType"] == "REPLICA"
    assert config["PrimaryKey"] == {"Arn": primary["Arn"], "Region": "us-east-1"}
    assert config["ReplicaKeys"] == [{"Arn": replica["Arn"], "Region": "us-west-1"}]

    again = kms.describe_key(KeyId=primary["KeyId"])["KeyMetadata"]["MultiRegionConfiguration"]
    assert again["MultiRegionKeyType"] == "PRIMARY"
    assert again["ReplicaKeys"] == [{"Arn": replica["Arn"], "Region": "us-west-1"}]

    # "All other properties of a replica key can differ, including its ... aliases".
    names = [a["AliasName"] for a in west.list_aliases(KeyId=replica["KeyId"])["Aliases"]]
    assert names == []
