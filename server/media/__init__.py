"""Media: encrypted uploads, signed per-viewer links, range downloads, media messages (issue 12).

- ``blobcrypt``: the chunked AES-256-GCM file format every blob, thumbnail and temp file uses.
- ``links``: signed, expiring download tokens bound to media id, variant and viewer.
- ``kinds``: the per-kind allow-lists, type detection from magic bytes, file-name sanitising.
- ``images`` / ``video``: Pillow re-encoding and thumbnails; the optional PyAV poster frame.
- ``upload``: the incremental multipart parser that streams one file part into a blob.
- ``service``: ``MediaService``, what routes, messaging (sends, per-viewer links) and
  moderation (``frames_of``) call.
- ``frames``: what the image detectors see: an image, or a video's sampled frames.
"""
