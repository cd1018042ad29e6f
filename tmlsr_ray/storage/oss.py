"""Aliyun OSS: output storage, input reads and finished video pieces, with the ``oss2`` client
(no Ray, no HTTP server)."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import quote, unquote, urlsplit

import oss2
import requests

from tmlsr_ray.piece import Piece
from tmlsr_ray.errors import FetchError, StorageError
from tmlsr_ray.urls import CHUNK_BYTES, CappedFile, without_credentials

_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
# https://BUCKET.oss-REGION[-internal].aliyuncs.com/KEY
_OSS_HOST = re.compile(rf"^(?P<bucket>{_BUCKET.pattern})\.(?P<endpoint>oss-[a-z0-9-]+\.aliyuncs\.com)$")


@dataclass(frozen=True)
class OssConfig:
    endpoint: str  # e.g. https://oss-cn-hangzhou.aliyuncs.com
    access_key_id: str
    access_key_secret: str
    security_token: Optional[str] = None  # STS
    region: Optional[str] = None
    bucket: Optional[str] = None  # the output bucket
    prefix: str = "tmlsr"
    url_expires_s: int = 86400
    public_urls: bool = False
    multipart_threshold_bytes: int = 100 * 1024**2
    part_size_bytes: int = 16 * 1024**2
    timeout_s: float = 60.0  # a request with no answer (connect or read) for this long has failed

    def auth(self):
        if self.security_token:
            return oss2.StsAuth(self.access_key_id, self.access_key_secret, self.security_token)
        return oss2.Auth(self.access_key_id, self.access_key_secret)

    def bucket_client(self, name: str, endpoint: Optional[str] = None) -> oss2.Bucket:
        return oss2.Bucket(self.auth(), endpoint or self.endpoint, name, region=self.region,
                           connect_timeout=self.timeout_s)


def parse_oss_url(url: str, config: Optional[OssConfig]) -> Optional[Tuple[str, str, Optional[str]]]:
    """(bucket, key, endpoint) for an OSS object URL, or ``None`` for any other URL.

    ``oss://BUCKET/KEY`` uses the configured endpoint; ``https://BUCKET.oss-REGION.aliyuncs.com/KEY``
    names its own (read through oss2 when credentials are configured, so private buckets work).
    One with a query is fetched over HTTP as given: its own signature (another account's), an
    image process or a version would be lost on the service's key.
    """
    parts, shown = urlsplit(url), without_credentials(url)  # the error is the task's, which anyone may read
    key = unquote(parts.path.lstrip("/"))
    if parts.scheme == "oss":
        if not parts.netloc or not key:
            raise FetchError(f"an OSS URL needs a bucket and a key: oss://BUCKET/KEY, got {shown}")
        if parts.query:  # a version or an image process would be dropped without a word
            raise FetchError("an oss:// URL takes no query (?…); for a version or an image process, "
                             "give the object's https URL")
        if not _BUCKET.fullmatch(parts.netloc):
            raise FetchError(f"{urlsplit(shown).netloc!r} is not an OSS bucket name (3-63 lowercase letters, digits "
                             "and hyphens, a letter or digit at each end)")
        return parts.netloc, key, None
    match = _OSS_HOST.match(parts.hostname or "")
    if match and config is not None and parts.scheme in ("http", "https") and not parts.query:
        if not key:  # oss2 refuses an empty key with "HTTP -1" and no message
            raise FetchError(f"an OSS URL needs a bucket and a key: https://BUCKET.ENDPOINT/KEY, got {shown}")
        return match["bucket"], key, f"{parts.scheme}://{match['endpoint']}"
    return None


def download(config: OssConfig, bucket: str, key: str, dest: Path, max_bytes: int) -> int:
    """Streams an object to ``dest``; the size limit holds while streaming."""
    client = config.bucket_client(bucket)
    try:
        result = client.get_object(key)
        with CappedFile(dest, max_bytes, result.content_length) as out:
            for chunk in iter(lambda: result.read(CHUNK_BYTES), b""):
                out.write(chunk)
        if out.written == 0:  # as an HTTP input's empty body, not "not a readable image" later
            raise FetchError(f"OSS object oss://{bucket}/{key} is empty")
        return out.written
    except oss2.exceptions.NoSuchKey as exc:
        raise FetchError(f"OSS object not found: oss://{bucket}/{key}") from exc
    except oss2.exceptions.OssError as exc:
        error = oss_error(exc, config.timeout_s)
        if error.transient:  # asked again, as an HTTP input is
            raise error from exc
        raise FetchError(f"OSS refused the download of oss://{bucket}/{key}: {error}") from exc


class OssStorage:
    """Outputs in ``BUCKET/PREFIX/YYYY/MM/DD/TASK_ID/NAME``: resumable multipart upload for large
    files, content type set, and a signed GET URL (or the public URL for a public bucket)."""

    def __init__(self, config: OssConfig, checkpoint_dir: Path):
        if not config.bucket:
            raise ValueError("OSS output storage needs oss_bucket")
        self._config = config
        self._bucket = config.bucket_client(config.bucket)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._checkpoints = oss2.ResumableStore(root=str(checkpoint_dir))

    def put(self, key: str, source: Path, content_type: str) -> str:
        """One try; a try after a failed one goes on with the parts already uploaded."""
        name = self._object_name(key)
        try:
            oss2.resumable_upload(
                self._bucket, name, str(source), store=self._checkpoints,
                headers={"Content-Type": content_type},
                multipart_threshold=self._config.multipart_threshold_bytes,
                part_size=self._config.part_size_bytes,
            )
        except oss2.exceptions.OssError as exc:
            raise upload_error(exc, self._config.timeout_s) from exc
        if self._config.public_urls:
            return self._public_url(name)
        return self._bucket.sign_url("GET", name, self._config.url_expires_s, slash_safe=True)

    def _public_url(self, name: str) -> str:
        endpoint = urlsplit(self._bucket.endpoint)
        if oss2.utils.is_ip_or_localhost(endpoint.netloc):  # path-style addressing
            return f"{endpoint.scheme}://{endpoint.netloc}/{self._config.bucket}/{quote(name)}"
        return f"{endpoint.scheme}://{self._config.bucket}.{endpoint.netloc}/{quote(name)}"

    def abandon(self, key: str, source: Path) -> None:
        name = self._object_name(key)
        with contextlib.suppress(FileNotFoundError):
            self._checkpoints.delete(self._checkpoints.make_store_key(self._bucket.bucket_name, name, str(source)))
        _remove(self._bucket, name)  # a request that timed out may still have written it

    def location(self, key: str) -> str:
        return f"oss://{self._config.bucket}/{self._object_name(key)}"

    def delete(self, location: str) -> None:
        """A location names its bucket and whole object name; a bare key (a record of an older
        version) is below the current prefix. An unfinished upload of the name goes too (a run
        cut off in the middle of its parts: they are billed, and listed nowhere else)."""
        parts = urlsplit(location)
        if parts.scheme != "oss":
            _remove(self._bucket, self._object_name(location))
            return
        bucket = self._bucket if parts.netloc == self._config.bucket else self._config.bucket_client(parts.netloc)
        _remove(bucket, parts.path.lstrip("/"))

    def _object_name(self, key: str) -> str:
        return f"{self._config.prefix.strip('/')}/{key}" if self._config.prefix else key


def _remove(bucket: oss2.Bucket, name: str) -> None:
    """The object and every unfinished multipart upload of it."""
    for upload in oss2.MultipartUploadIterator(bucket, prefix=name):
        if upload.key == name:
            bucket.abort_multipart_upload(name, upload.upload_id)
    bucket.delete_object(name)


def upload_error(exc: oss2.exceptions.OssError, timeout_s: float) -> StorageError:
    error = oss_error(exc, timeout_s)
    return error if error.transient else StorageError(f"OSS refused the upload: {error}")


def oss_error(exc: oss2.exceptions.OssError, timeout_s: float) -> StorageError:
    """A readable error, transient when OSS may do it if asked again: no answer in time, no
    connection, 429 or 5xx, a checksum that did not match."""
    if isinstance(exc, oss2.exceptions.RequestError):
        if isinstance(exc.exception, requests.Timeout):
            return StorageError(f"OSS did not answer within {timeout_s:g} s", transient=True)
        return StorageError(f"could not reach OSS ({type(exc.exception).__name__})", transient=True)
    if isinstance(exc, oss2.exceptions.InconsistentError):
        return StorageError("OSS sent or received the data with another checksum", transient=True)
    answer = f"OSS answered HTTP {exc.status} {exc.code or ''}: {exc.message or ''}".replace(" :", ":")
    return StorageError(answer, transient=exc.status == 429 or exc.status >= 500)


class OssPieceStore:
    """Finished pieces as OSS objects under ``PREFIX/pieces/TASK_ID/PLAN/``, so a runner restarted
    on another node finds them; the join reads them back into ``local_dir``."""

    def __init__(self, bucket: oss2.Bucket, prefix: str, local_dir: Path):
        self._bucket = bucket
        self._prefix = prefix.rstrip("/") + "/"
        self._local = local_dir

    def finished(self) -> Dict[int, Piece]:
        names = {item.key for item in oss2.ObjectIterator(self._bucket, prefix=self._prefix)}
        pieces: Dict[int, Piece] = {}
        for name in sorted(n for n in names if n.endswith(".json")):
            try:
                piece = Piece(**json.loads(self._bucket.get_object(name).read()))
            except (ValueError, TypeError, oss2.exceptions.NoSuchKey):
                continue
            if self._name(piece.index, "mp4") in names:
                pieces[piece.index] = piece
        return pieces

    def save(self, data: bytes, piece: Piece) -> None:
        # The piece first, its record after: a record names only a piece that is whole.
        self._bucket.put_object(self._name(piece.index, "mp4"), data)
        self._bucket.put_object(self._name(piece.index, "json"), json.dumps(asdict(piece)).encode())

    def in_order(self, pieces: Dict[int, Piece]) -> Iterator[Tuple[Path, Piece]]:
        self._local.mkdir(parents=True, exist_ok=True)
        for index in sorted(pieces):
            path = self._local / f"{index:05d}.mp4"
            self._bucket.get_object_to_file(self._name(index, "mp4"), str(path))
            yield path, pieces[index]

    def remove(self) -> None:
        names = [item.key for item in oss2.ObjectIterator(self._bucket, prefix=self._prefix)]
        for name in names:
            self._bucket.delete_object(name)

    def _name(self, index: int, extension: str) -> str:
        return f"{self._prefix}{index:05d}.{extension}"
