"""Reading a ``multipart/form-data`` upload incrementally: one ``file`` part, streamed.

``python_multipart``'s parser is fed the request body as it arrives; the bytes of the
``file`` part go straight to a sink (which encrypts them, see ``blobcrypt``), so the upload
is never whole in memory and never on disk in plaintext (Starlette's ``request.form()``
would spool a large part to a plaintext temporary file). Other parts are small form fields,
kept (bounded) in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from server.errors import BadRequest, TooLarge, UnsupportedMedia

FILE_FIELD = "file"
MAX_FIELDS = 16
MAX_FIELD_BYTES = 1024


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


@dataclass(frozen=True)
class FilePart:
    """The headers of the file part: its raw file name and declared type (hints only)."""

    filename: str
    content_type: str | None


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a ``Content-Type`` header; 415 if it is not multipart."""
    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UnsupportedMedia(
            "send the upload as multipart/form-data with a 'file' part",
            {"contentType": content_type[:200]},
        )
    if len(boundary) > 70:  # RFC 2046
        raise BadRequest("multipart boundary longer than 70 characters")
    return boundary


class MultipartReader:
    """Feeds the body to the parser; calls ``open_file`` once, for the ``file`` part, and
    writes that part's bytes to the sink it returns.

    Synchronous (it runs in a worker thread with the sink's encryption and writes); errors
    raised by the sink (``TooLarge``, a refused type) propagate out of ``feed``.
    """

    def __init__(self, boundary: bytes, open_file: Callable[[FilePart], Sink]) -> None:
        self._open_file = open_file
        self.fields: dict[str, str] = {}
        self.file_done = False
        self._sink: Sink | None = None
        self._headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self._part: str | None = None  # "file", a field name, or None before headers end
        self._field_buf = bytearray()
        self._parts = 0
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    # ------------------------------------------------------------------ parser callbacks

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS:
            raise BadRequest(f"more than {MAX_FIELDS} parts in the upload")
        self._headers = {}
        self._part = None
        self._field_buf = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.strip()  # raw: browsers send UTF-8 file names
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise BadRequest("each multipart part needs Content-Disposition: form-data; name=")
        name = params[b"name"].decode("utf-8", "replace")
        if name != FILE_FIELD:
            self._part = name
            return
        if self._sink is not None:
            raise BadRequest("one 'file' part per upload")
        filename = params.get(b"filename", b"").decode("utf-8", "replace")
        self._part = FILE_FIELD
        declared = self._headers.get("content-type")
        ctype = declared.decode("latin-1") if declared is not None else None
        self._sink = self._open_file(FilePart(filename, ctype))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == FILE_FIELD:
            assert self._sink is not None
            self._sink.write(data[start:end])
            return
        self._field_buf += data[start:end]
        if len(self._field_buf) > MAX_FIELD_BYTES:
            raise TooLarge(f"form field '{self._part}' over {MAX_FIELD_BYTES} bytes")

    def _on_part_end(self) -> None:
        if self._part == FILE_FIELD:
            self.file_done = True
        elif self._part is not None:
            self.fields[self._part] = self._field_buf.decode("utf-8", "replace")

    def _on_end(self) -> None:
        self._ended = True

    # ------------------------------------------------------------------ input

    def feed(self, data: bytes) -> None:
        """Parse the next piece of the body."""
        try:
            self._parser.write(data)
        except FormParserError as exc:
            raise BadRequest(f"malformed multipart body ({exc})") from None

    def finish(self) -> None:
        """The body has ended: raises BadRequest unless it held one complete file part."""
        try:
            self._parser.finalize()
        except FormParserError as exc:
            raise BadRequest(f"malformed multipart body ({exc})") from None
        if not self._ended:
            raise BadRequest("the multipart body ended early")
        if self._sink is None or not self.file_done:
            raise BadRequest("the upload has no 'file' part")
