"""An object store on any S3 server through the minio client (MinIO, Ceph radosgw)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, BinaryIO, cast

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name

from tongban.storage.objects._base import (
    _DELETE_BATCH,
    _MAX_PART_SIZE,
    _MIN_PART_SIZE,
    DEFAULT_PART_SIZE,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreConfigError,
    ObjectStoreError,
    ObjectStoreUnavailable,
    StoredObject,
    _check_aware,
    _check_chunk_size,
    _check_key,
    _check_length,
    _log,
    _ObjectChunks,
    _size_mismatch,
)

_RETRYABLE_S3_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"}
)
_DENIED_S3_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)


def _s3_failure(exc: Exception, what: str) -> ObjectStoreError | None:
    """The store error for a failure of the minio client, or None if it is not one."""
    if isinstance(exc, S3Error):
        detail = f"{what}: {exc.code}: {exc.message}"
        if exc.code in {"NoSuchKey", "NoSuchObject"}:
            return ObjectNotFound(f"{what}: no such object")
        if exc.code == "NoSuchBucket":
            return ObjectStoreError(detail, code="no-such-bucket")
        if exc.code in _RETRYABLE_S3_CODES:
            return ObjectStoreUnavailable(detail)
        if exc.code in _DENIED_S3_CODES:
            return ObjectStoreError(detail, code="access-denied")
        return ObjectStoreError(detail, code="s3-error")
    if isinstance(exc, ServerError | InvalidResponseError):
        return ObjectStoreUnavailable(f"{what}: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return ObjectStoreUnavailable(f"{what}: {type(exc).__name__}: {exc}")
    return None


@contextmanager
def _s3_call(what: str) -> Iterator[None]:
    """Turn failures of the minio client (and of its HTTP stack) into store errors."""
    try:
        yield
    except ObjectStoreError:
        raise
    except Exception as exc:
        failure = _s3_failure(exc, what)
        if failure is None:
            raise
        raise failure from exc


class _ChunkReader:
    """A file-like view of an iterable of chunks, as the minio client reads uploads.

    Each read returns exactly the bytes asked for in one copy, however small the chunks.
    The digest and size cover exactly the bytes handed out.
    """

    def __init__(self, key: str, chunks: Iterable[bytes], length: int | None) -> None:
        self._key = key
        self._chunks = iter(chunks)
        self._length = length
        self._pending = memoryview(b"")
        self._done = False
        self.digest = hashlib.sha256()
        self.size = 0
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise ValueError("the upload reader needs a size")
        pieces: list[memoryview] = []
        wanted = size
        while wanted > 0:
            if not self._pending and (self._done or not self._next_chunk()):
                break
            piece = self._pending[:wanted]
            self._pending = self._pending[wanted:]
            pieces.append(piece)
            wanted -= piece.nbytes
        return b"".join(pieces)

    def _next_chunk(self) -> bool:
        try:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                if self._length is not None and self.size != self._length:
                    raise _size_mismatch(self._key, self._length, self.size, more=False) from None
                return False
            view = memoryview(chunk).cast("B")
            self.size += view.nbytes
            if self._length is not None and self.size > self._length:
                raise _size_mismatch(self._key, self._length, self.size, more=True)
        except BaseException as exc:
            # Recorded so the caller's own exception can be re-raised as it was, even if the
            # client fails again while aborting the upload.
            self.failure = exc
            raise
        self.digest.update(view)
        self._pending = view
        return True


class _ResponseSource:
    def __init__(self, response: Any) -> None:
        self._response = response

    def read(self, size: int, /) -> bytes:
        data: bytes = self._response.read(size)
        return data

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


class S3ObjectStore(ObjectStore):
    """Objects in one bucket of an S3 server (MinIO, Ceph radosgw, AWS) via the minio client.

    Uploads go up in parts of ``part_size`` bytes. Memory stays under three parts whatever
    the object's size: the minio client keeps the part it sent while reading the next one,
    and copies each part once more.

    Only behaviour common to MinIO and radosgw is relied on: the ETag of a multipart upload
    is never used (radosgw returns none); digests are computed here. Uploads cut off by a
    crash leave incomplete multipart uploads behind; an AbortIncompleteMultipartUpload
    lifecycle rule on the bucket reclaims them.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = True,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        create_bucket: bool = True,
        timeout: float = 60.0,
    ) -> None:
        """Connect to ``endpoint`` (``host[:port]``) and use ``bucket``.

        Args:
            endpoint: the server's host and port, without scheme.
            access_key: S3 access key.
            secret_key: S3 secret key.
            bucket: the bucket holding the objects.
            secure: use HTTPS (certificates checked against ``SSL_CERT_FILE`` or certifi).
            region: the bucket's region; when None it is asked of the server once.
            part_size: multipart part size in bytes, 5 MiB to 5 GiB.
            create_bucket: create the bucket if it does not exist (checks the connection).
            timeout: seconds to wait for a connection and between received bytes.

        Raises:
            ObjectStoreConfigError: an argument is malformed.
            ObjectStoreUnavailable: the server could not be reached (with ``create_bucket``).
            ObjectStoreError: the server refused, e.g. ``code == "access-denied"``.
        """
        if not _MIN_PART_SIZE <= part_size <= _MAX_PART_SIZE:
            raise ObjectStoreConfigError(
                f"part_size must be between {_MIN_PART_SIZE} and {_MAX_PART_SIZE} bytes, "
                f"not {part_size}"
            )
        if not access_key or not secret_key:
            raise ObjectStoreConfigError("an S3 store needs an access key and a secret key")
        try:
            check_bucket_name(bucket, strict=True)
        except ValueError:
            raise ObjectStoreConfigError(
                f"invalid bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-'"
            ) from None
        self._endpoint = endpoint
        self._bucket = bucket
        self._secure = secure
        self._region = region
        self._part_size = part_size
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            # Few, quick retries: a store that is down should surface as unavailable
            # promptly, and the caller's own retry policy decides what happens next.
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=self._http,
            )
        except ValueError as exc:
            self._http.clear()
            raise ObjectStoreConfigError(f"invalid S3 endpoint {endpoint!r}: {exc}") from None
        if create_bucket:
            try:
                self._ensure_bucket()
            except BaseException:
                self._http.clear()
                raise

    @property
    def endpoint(self) -> str:
        """The server's ``host[:port]``."""
        return self._endpoint

    @property
    def bucket(self) -> str:
        """The bucket holding the objects."""
        return self._bucket

    @property
    def secure(self) -> bool:
        """Whether the store talks HTTPS."""
        return self._secure

    @property
    def region(self) -> str | None:
        """The configured region, if any."""
        return self._region

    @property
    def part_size(self) -> int:
        """Multipart part size in bytes."""
        return self._part_size

    def __repr__(self) -> str:
        scheme = "https" if self._secure else "http"
        return f"S3ObjectStore({scheme}://{self._endpoint}/{self._bucket})"

    def _ensure_bucket(self) -> None:
        with _s3_call(f"bucket {self._bucket!r} at {self._endpoint}"):
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket, location=self._region)
            except S3Error as exc:
                # Another node may create the bucket at the same moment.
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise

    def put_stream(
        self, key: str, chunks: Iterable[bytes], *, length: int | None = None
    ) -> StoredObject:
        key = _check_key(key)
        _check_length(length)
        reader = _ChunkReader(key, chunks, length)
        try:
            # Unknown length (-1) keeps the client reading part by part until the stream
            # ends, so a short or long stream is caught before the upload completes.
            self._client.put_object(
                self._bucket,
                key,
                cast(BinaryIO, reader),  # the client only calls read(size)
                -1,
                part_size=self._part_size,
                num_parallel_uploads=1,
            )
        except BaseException as exc:
            failure = reader.failure
            if failure is None:
                translated = None
                if isinstance(exc, Exception):
                    translated = _s3_failure(exc, f"put {key!r}")
                if translated is None:
                    raise
                raise translated from exc
            if exc is failure:
                raise
            _log.warning("aborting the upload of %r failed too: %s", key, exc)
            # The caller's exception, not the client's, says what went wrong.
            raise failure  # noqa: B904
        return StoredObject(key, reader.size, reader.digest.hexdigest())

    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        key = _check_key(key)
        _check_chunk_size(chunk_size)
        what = f"get {key!r}"
        with _s3_call(what):
            response = self._client.get_object(self._bucket, key)
        return _ObjectChunks(
            _ResponseSource(response), chunk_size, lambda exc: _s3_failure(exc, what)
        )

    def stat(self, key: str) -> ObjectInfo:
        key = _check_key(key)
        with _s3_call(f"stat {key!r}"):
            info = self._client.stat_object(self._bucket, key)
        if info.size is None:
            raise ObjectStoreError(f"stat {key!r}: the server sent no size", code="s3-error")
        return ObjectInfo(key, info.size)

    def delete(self, key: str) -> None:
        key = _check_key(key)
        with _s3_call(f"delete {key!r}"):
            self._client.remove_object(self._bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        prefix = _check_key(prefix, prefix=True)
        count = 0
        batch: list[str] = []
        for key in self.list_keys(prefix):
            batch.append(key)
            if len(batch) == _DELETE_BATCH:
                count += self._delete_batch(batch, prefix)
                batch = []
        if batch:
            count += self._delete_batch(batch, prefix)
        return count

    def _delete_batch(self, keys: list[str], prefix: str) -> int:
        what = f"delete under {prefix!r}"
        with _s3_call(what):
            errors = list(
                self._client.remove_objects(self._bucket, [DeleteObject(k) for k in keys])
            )
        failed = [e for e in errors if e.code != "NoSuchKey"]
        if failed:
            first = failed[0]
            raise ObjectStoreError(
                f"{what}: {len(failed)} objects not deleted, e.g. {first.name!r}: "
                f"{first.code}: {first.message}",
                code="s3-error",
            )
        return len(keys)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        prefix = _check_key(prefix, prefix=True)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        with _s3_call(f"list {prefix!r}"):
            for obj in self._client.list_objects(
                self._bucket, prefix=prefix or None, recursive=True
            ):
                yield str(obj.object_name)

    def remove_stale_partials(
        self, older_than: datetime, *, writing: Callable[[str], bool] = lambda _key: False
    ) -> int:
        cutoff = _check_aware(older_than)
        stale = [
            (key, upload_id)
            for key, upload_id, started in self._incomplete_uploads()
            if started is not None and started.timestamp() < cutoff and not writing(key)
        ]
        for key, upload_id in stale:
            with _s3_call(f"abort the upload of {key!r}"):
                try:
                    self._client._abort_multipart_upload(self._bucket, key, upload_id)
                except S3Error as exc:
                    if exc.code != "NoSuchUpload":  # completed or aborted meanwhile
                        raise
        return len(stale)

    def _incomplete_uploads(self) -> Iterator[tuple[str, str, datetime | None]]:
        """Every incomplete multipart upload in the bucket: key, upload id, start time."""
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            with _s3_call(f"list the incomplete uploads of {self._bucket!r}"):
                page = self._client._list_multipart_uploads(
                    self._bucket, key_marker=key_marker, upload_id_marker=upload_marker
                )
            for upload in page.uploads:
                if upload.upload_id:
                    yield upload.object_name, upload.upload_id, upload.initiated_time
            if not page.is_truncated or not page.uploads:
                return
            # The page's own next markers are not parsed reliably by every client version;
            # the last upload listed is where the next page starts.
            key_marker = page.uploads[-1].object_name
            upload_marker = page.uploads[-1].upload_id

    def close(self) -> None:
        self._http.clear()
