"""Media: encrypted uploads, signed per-viewer links, range downloads (issue 12, phase 1).

- ``blobcrypt``: the chunked AES-256-GCM file format every blob, thumbnail and temp file uses.
- ``links``: signed, expiring download tokens bound to media id, variant and viewer.
- ``kinds``: the per-kind allow-lists, type detection from magic bytes, file-name sanitising.
- ``images`` / ``video``: Pillow re-encoding and thumbnails; the optional PyAV poster frame.
- ``upload``: the incremental multipart parser that streams one file part into a blob.
- ``service``: ``MediaService``, what routes and (later) the messaging service call.
"""
