"""Verifying a sealed document for anyone: the offline verifier's checks, with this node's
own seal records and the current status of the e-certificates it issued."""

from __future__ import annotations

from typing import BinaryIO

from cryptography import x509

from tongban.keys.ecert import ECertStatusEntry
from tongban.keys.seals import SealRecord
from tongban.keys.verification import SealVerificationReport, seal_verification_result
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.server.usecases.seals import SealOffice

__all__ = ["DocumentVerification"]


class DocumentVerification:
    """Judges a document and its seal as of now.

    Its dependencies are its constructor's arguments: the federation roots the verifier
    trusts, the directory (seal records other nodes publish), this node's seal office (its
    own records, and the live status of its e-certificates), and the clock.
    """

    def __init__(
        self,
        *,
        roots: list[x509.Certificate],
        directory: DirectoryHolder,
        seals: SealOffice,
        clock: Clock,
    ) -> None:
        self._roots = roots
        self._directory = directory
        self._seals = seals
        self._clock = clock

    def seal_records(self) -> list[SealRecord]:
        """This node's seal records, then those the directory publishes for the others."""
        # This node's own records need no signature round trip; the directory may add more.
        published = [SealRecord.from_json_dict(s) for s in self._directory.current.seals]
        return [*self._seals.registered_seals(), *published]

    def verify(self, document: BinaryIO, *, seal: bytes | None) -> SealVerificationReport:
        """The report for ``document`` (a sealed PDF, or any file with its detached ``seal``)."""
        return seal_verification_result(
            document,
            seal=seal,
            roots=self._roots,
            seals=self.seal_records(),
            at=self._clock(),
            online_status=self.ecert_status,
        )

    def ecert_status(self, identifier: str) -> ECertStatusEntry:
        """The current status of an e-certificate this node issued.

        Raises:
            ECertIdentifierError: a malformed identifier. NotFound: not issued here.
        """
        return self._seals.ecert_status(identifier)
