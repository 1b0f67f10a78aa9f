"""Protected health information: how the service refers to instances without revealing them.

The service never logs, returns or stores the value of an identifying DICOM
attribute (patient name, id, birth date, accession number, UIDs, ...). Where a
result must point at a DICOM instance, it carries ``instance_ref``: an
HMAC-SHA256 of the SOP Instance UID under a key kept in Key Vault
(``MEDAI_PHI_HASH_KEY_SECRET``). The same instance always gets the same
reference under one key, so results can be joined, but the UID cannot be
recovered or confirmed by anyone without the key.

Blob names can carry identifiers too (``Doe^John/CT1.dcm``): logs refer to a
blob by :func:`opaque_ref` of its name, never by the name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets as _random
from collections.abc import Callable

from inference.errors import ConfigurationError

from .secrets import SecretSource

log = logging.getLogger("medai.security")

# Attributes of the DICOM basic application-level confidentiality profile (PS3.15 E.1) that
# the PHI tests fill with recognisable values and search for in every captured output.
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientAddress",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)

_REF_PREFIX = "h1:"


def keyed_ref(key: bytes, value: str) -> str:
    """The keyed reference of ``value``: ``h1:`` and 32 hex digits of HMAC-SHA256."""
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return _REF_PREFIX + digest[:32]


def make_instance_ref(secrets: SecretSource, secret_name: str, *, allow_ephemeral: bool) -> Callable[[str], str]:
    """Return the function that turns a SOP Instance UID into ``instance_ref``.

    Args:
        secrets: Where the hashing key is read (cached by the source).
        secret_name: The Key Vault secret holding the key.
        allow_ephemeral: Local development: when the secret is missing, use a
            random per-process key (references then change at each restart).

    Raises:
        ConfigurationError: The key is missing and no ephemeral key is allowed.
    """
    try:
        secrets.get(secret_name)
    except ConfigurationError:
        if not allow_ephemeral:
            raise
        ephemeral = _random.token_bytes(32)
        log.warning("no PHI hashing key configured; using a random per-process key (local development)")
        return lambda uid: keyed_ref(ephemeral, uid)

    def instance_ref(uid: str) -> str:
        return keyed_ref(secrets.get(secret_name).encode("utf-8"), uid)

    return instance_ref


def opaque_ref(value: str) -> str:
    """A short unkeyed digest for correlating log lines about a name (not a secret)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
