"""A botocore StreamingBody (an S3 object's body) as a readable raw stream, so it can be wrapped like a local
file (io.BufferedReader, gzip, tarfile) and read in bounded pieces instead of all at once."""

from __future__ import annotations

import io


class StreamingBodyReader(io.RawIOBase):
    def __init__(self, body):
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
