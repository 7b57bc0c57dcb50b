"""Streaming multipart upload: the file part goes straight to disk and reading stops at the size limit,
so a large or endless upload never sits in memory and is cut off at ``MAX_FILE_SIZE``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from proxyai.api.text import clean_filename

MAX_FIELD = 10_000  # bytes per ordinary form field
MAX_FIELDS = 64_000  # bytes of all ordinary form fields together (they are held in memory)
MAX_PART_HEADERS = 16_000  # bytes of one part's headers


@dataclass
class Received:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    path: str | None = None


def storage_error(exc: OSError) -> HTTPException:
    """What a client is told when the upload cannot be stored: 507 for a full disk, 503 otherwise (the
    operator has to act; the details go to the log, not to the client)."""
    import errno

    import structlog

    structlog.get_logger("proxyai.api").error("cannot store an upload", error=f"{type(exc).__name__}: {exc}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HTTPException(507, "the server's upload storage is full; try again later")
    return HTTPException(503, "the server cannot store uploads at the moment; try again later")


class _Sink:
    """Collects one multipart stream: form fields in memory (small), the ``file`` part on disk."""

    def __init__(self, fd: int, path: str, limit: int) -> None:
        self.fd = fd
        self.out = Received(path=path)
        self.limit = limit
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.value = bytearray()
        self.is_file = False
        self.skip = False
        self.file_seen = False
        self.fields_size = 0

    def on_part_begin(self) -> None:
        self.headers = {}
        self.value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]
        self._check_headers()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        self._check_headers()

    def _check_headers(self) -> None:
        if len(self.header_field) + len(self.header_value) + sum(map(len, self.headers.values())) > MAX_PART_HEADERS:
            raise HTTPException(413, "a part of the form has headers that are too large")

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self.is_file = self.name == "file" and filename is not None and not self.file_seen
        # another file part (a wrong field name, a second file) is read past, not kept
        self.skip = filename is not None and not self.is_file
        if self.is_file and filename is not None:
            self.file_seen = True
            self.out.filename = clean_filename(os.path.basename(filename.decode("utf-8", "replace"))) or "audio"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.skip:
            return
        if self.is_file:
            self.out.size += len(chunk)
            if self.out.size > self.limit:
                raise HTTPException(413, f"the file is larger than the limit of {self.limit} bytes")
            try:
                view = memoryview(chunk)
                while view:  # a write may store less than asked (a disk that fills up): the rest, or ENOSPC
                    view = view[os.write(self.fd, view) :]
            except OSError as exc:
                raise storage_error(exc) from None
        else:
            self.value += chunk
            self.fields_size += len(chunk)
            if len(self.value) > MAX_FIELD:
                raise HTTPException(413, f"form field {self.name!r} is too large")
            if self.fields_size > MAX_FIELDS:
                raise HTTPException(413, f"the form fields are larger than {MAX_FIELDS} bytes in all")

    def on_part_end(self) -> None:
        if not self.is_file and not self.skip and self.name:
            self.out.fields[self.name] = self.value.decode("utf-8", "replace")


async def receive_upload(request: Request, fd: int, path: str, limit: int) -> Received:
    """Stream the request's multipart body: the ``file`` part into ``fd`` (at ``path``), fields into a dict.

    Raises 413 as soon as the file passes ``limit`` (or the declared length says it will), 400/422 for
    a body that is not a multipart form with a file.
    """
    content_type = request.headers.get("content-type", "")
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise HTTPException(422, "send the audio as multipart/form-data with a 'file' field")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 1_000_000:
        raise HTTPException(413, f"the file is larger than the limit of {limit} bytes")
    sink = _Sink(fd, path, limit)
    callbacks: Any = {
        "on_part_begin": sink.on_part_begin,
        "on_part_data": sink.on_part_data,
        "on_part_end": sink.on_part_end,
        "on_header_field": sink.on_header_field,
        "on_header_value": sink.on_header_value,
        "on_header_end": sink.on_header_end,
        "on_headers_finished": sink.on_headers_finished,
    }
    parser = MultipartParser(params[b"boundary"], callbacks)
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except HTTPException:
        raise
    except Exception as exc:  # a malformed body
        raise HTTPException(400, f"the multipart body cannot be read: {exc}") from None
    if sink.out.filename is None:
        raise HTTPException(422, "no 'file' field in the form")
    return sink.out
