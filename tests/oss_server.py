"""An OSS-compatible server for tests: path-style buckets, objects, multipart uploads, and the
OSS signature (version 1) checked on every request, in the Authorization header or a signed URL.

A request signed with another secret, or a signed URL past its expiry, is refused with 403, as
OSS does. Objects live in memory. Faults can be injected: the next requests of a method answered
with a 5xx, or answered late (after the client's timeout; the request is still carried out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Tuple, Union
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.helpers import QuietHTTPServer

SIGNED_SUBRESOURCES = {
    "acl", "uploadId", "uploads", "partNumber", "security-token", "response-content-type",
    "response-content-disposition", "response-cache-control", "response-expires", "objectMeta",
    "tagging", "versionId", "x-oss-process", "x-oss-traffic-limit",
}


def signature(secret: str, method: str, headers: Dict[str, str], resource: str, date: str) -> str:
    oss_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-oss-"))
    canonical = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    lowered = {k.lower(): v for k, v in headers.items()}
    to_sign = "\n".join([method, lowered.get("content-md5", ""), lowered.get("content-type", ""), date,
                         canonical + resource])
    digest = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class OssState:
    def __init__(self, access_key_id: str, secret: str, security_token: str | None = None):
        self.access_key_id, self.secret, self.security_token = access_key_id, secret, security_token
        self.objects: Dict[Tuple[str, str], Tuple[bytes, str]] = {}
        self.uploads: Dict[str, Dict[int, bytes]] = {}
        self.upload_targets: Dict[str, Tuple[str, str, str]] = {}  # upload id: bucket, key, content type
        self.requests: list = []
        # (request, HTTP status | seconds of delay); a request is "PUT", or "PUT?partNumber" for
        # PUTs with that parameter (a part), "POST?uploadId" (a multipart completion), …
        self.faults: List[Tuple[str, Union[int, float]]] = []
        self.lock = threading.Lock()

    def take_fault(self, method: str, params: Dict[str, str]) -> Union[int, float, None]:
        with self.lock:
            for index, (request, fault) in enumerate(self.faults):
                faulty, _, param = request.partition("?")
                if faulty == method and (not param or param in params):
                    del self.faults[index]
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: OssState

    def log_message(self, *args):
        pass

    # -- routing -----------------------------------------------------------------------------

    def do_PUT(self):
        self._dispatch("PUT")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.state.requests.append((method, bucket, key, sorted(params)))
        refusal = self._refusal(method, bucket, key, params)
        if refusal:
            return self._send(403, _error("SignatureDoesNotMatch", refusal), "application/xml")
        fault = self.state.take_fault(method, params)
        if isinstance(fault, int):
            busy = _error("ServiceUnavailable", "Please reduce your request rate.")
            return self._send(fault, busy, "application/xml")
        if fault is not None:
            time.sleep(fault)
        if "uploadId" in params and params["uploadId"] not in self.state.uploads:
            return self._send(404, _error("NoSuchUpload", "The specified upload does not exist."), "application/xml")
        if method == "PUT" and "partNumber" in params:
            self.state.uploads[params["uploadId"]][int(params["partNumber"])] = body
            return self._send(200, b"", headers={"ETag": f'"{hashlib.md5(body).hexdigest().upper()}"'})
        if method == "PUT":
            self.state.objects[(bucket, key)] = (body, self.headers.get("Content-Type", ""))
            return self._send(200, b"", headers={"ETag": f'"{hashlib.md5(body).hexdigest().upper()}"'})
        if method == "POST" and "uploads" in params:
            upload_id = hashlib.md5(f"{bucket}/{key}/{time.time()}".encode()).hexdigest()
            self.state.uploads[upload_id] = {}
            self.state.upload_targets[upload_id] = (bucket, key, self.headers.get("Content-Type", ""))
            xml = (f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                   f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
            return self._send(200, xml.encode(), "application/xml")
        if method == "POST" and "uploadId" in params:
            parts_list = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
            uploaded = self.state.uploads.pop(params["uploadId"])
            data = b"".join(uploaded[n] for n in parts_list)
            content_type = self.state.upload_targets.pop(params["uploadId"])[2]
            self.state.objects[(bucket, key)] = (data, content_type)
            xml = (f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                   f"<ETag>\"{hashlib.md5(data).hexdigest().upper()}-{len(parts_list)}\"</ETag>"
                   "</CompleteMultipartUploadResult>")
            return self._send(200, xml.encode(), "application/xml")
        if method == "GET" and "uploadId" in params:  # ListParts
            parts = self.state.uploads.get(params["uploadId"], {})
            items = "".join(
                f"<Part><PartNumber>{n}</PartNumber><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                f"<ETag>\"{hashlib.md5(d).hexdigest().upper()}\"</ETag><Size>{len(d)}</Size></Part>"
                for n, d in sorted(parts.items()))
            xml = (f"<ListPartsResult><Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>{params['uploadId']}"
                   f"</UploadId><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>{len(parts)}"
                   f"</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>{items}"
                   "</ListPartsResult>")
            return self._send(200, xml.encode(), "application/xml")
        if method == "GET" and "uploads" in params:  # ListMultipartUploads (one page)
            return self._send(200, self._uploads_listing(bucket, params.get("prefix", "")), "application/xml")
        if method == "DELETE" and "uploadId" in params:  # AbortMultipartUpload
            self.state.uploads.pop(params["uploadId"])
            self.state.upload_targets.pop(params["uploadId"])
            return self._send(204, b"")
        if method == "GET" and not key:  # ListObjects (one page: the tests hold few objects)
            return self._send(200, self._listing(bucket, params.get("prefix", "")), "application/xml")
        if method in ("GET", "HEAD"):
            if (bucket, key) not in self.state.objects:
                return self._send(404, _error("NoSuchKey", "The specified key does not exist."), "application/xml")
            data, content_type = self.state.objects[(bucket, key)]
            return self._send(200, data, content_type or "application/octet-stream",
                              headers={"ETag": f'"{hashlib.md5(data).hexdigest().upper()}"'},
                              head=method == "HEAD")
        if method == "DELETE":
            self.state.objects.pop((bucket, key), None)
            return self._send(204, b"")
        return self._send(400, _error("InvalidRequest", "not supported by the test server"), "application/xml")

    def _listing(self, bucket: str, prefix: str) -> bytes:
        keys = sorted(k for b, k in self.state.objects if b == bucket and k.startswith(prefix))
        items = "".join(
            f"<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"x\"</ETag>"
            f"<Type>Normal</Type><Size>{len(self.state.objects[(bucket, k)][0])}</Size>"
            "<StorageClass>Standard</StorageClass></Contents>" for k in keys)
        return (f"<ListBucketResult><Name>{bucket}</Name><Prefix>{prefix}</Prefix><Marker></Marker>"
                f"<MaxKeys>1000</MaxKeys><Delimiter></Delimiter><IsTruncated>false</IsTruncated>{items}"
                "</ListBucketResult>").encode()

    def _uploads_listing(self, bucket: str, prefix: str) -> bytes:
        items = "".join(
            f"<Upload><Key>{k}</Key><UploadId>{upload_id}</UploadId><Initiated>2026-01-01T00:00:00.000Z</Initiated>"
            "</Upload>" for upload_id, (b, k, _) in sorted(self.state.upload_targets.items())
            if b == bucket and k.startswith(prefix))
        return (f"<ListMultipartUploadsResult><Bucket>{bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker>"
                f"</UploadIdMarker><NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>"
                f"<Prefix>{prefix}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>{items}"
                "</ListMultipartUploadsResult>").encode()

    # -- authentication ----------------------------------------------------------------------

    def _refusal(self, method: str, bucket: str, key: str, params: Dict[str, str]) -> str | None:
        sub = sorted((k, v) for k, v in params.items() if k in SIGNED_SUBRESOURCES)
        resource = f"/{bucket}/{key}" + ("?" + "&".join(k + ("=" + v if v else "") for k, v in sub) if sub else "")
        headers = {k: v for k, v in self.headers.items()}
        if "Signature" in params:  # a signed URL
            if int(params.get("Expires", "0")) < time.time():
                return "Request has expired."
            given, access_key, date = params["Signature"], params.get("OSSAccessKeyId"), params["Expires"]
        else:
            match = re.fullmatch(r"OSS ([^:]+):(.+)", self.headers.get("Authorization", ""))
            if not match:
                return "no Authorization header"
            access_key, given = match.groups()
            date = self.headers.get("x-oss-date") or self.headers.get("Date", "")
        if access_key != self.state.access_key_id:
            return "unknown AccessKeyId"
        if self.state.security_token and self.headers.get("x-oss-security-token", params.get("security-token")) \
                != self.state.security_token:
            return "missing or wrong security token"
        expected = signature(self.state.secret, method, headers, resource, date)
        return None if hmac.compare_digest(expected, given) else "The request signature we calculated does not match"

    def _send(self, code: int, body: bytes, content_type: str = "application/octet-stream",
              headers: Dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-oss-request-id", "test")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head and code != 204:
            self.wfile.write(body)


def _error(code: str, message: str) -> bytes:
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>test</RequestId><HostId>test</HostId></Error>").encode()


class OssServer:
    def __init__(self, access_key_id: str = "test-id", secret: str = "test-secret",
                 security_token: str | None = None):
        self.state = OssState(access_key_id, secret, security_token)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = QuietHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail_next(self, count: int, request: str = "PUT", status: int = 503) -> None:
        """The next ``count`` such requests (see :class:`OssState`) are answered ``status``, an OSS error."""
        self.state.faults += [(request, status)] * count

    def stall_next(self, count: int, seconds: float, request: str = "PUT") -> None:
        """The next ``count`` such requests are carried out and answered after ``seconds``."""
        self.state.faults += [(request, float(seconds))] * count

    def close(self) -> None:
        self._server.shutdown()
