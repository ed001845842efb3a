"""Where a transform's records come from: a file, a folder of files or an s3:// prefix, read as a stream of lines.

An S3 object is read through model.common.streams in 1 MiB pieces, as the drift job reads captures; boto3 is
imported only for s3:// input (it is in the development environment when monitoring is included, and in .venv-aws).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batch.transform import EXTENSIONS, content_type_for
from model.common.streams import StreamingBodyReader

BLOCK = 1 << 20


class SourceError(ValueError):
    """The input cannot be read as asked (no such file, an unknown extension, s3:// without boto3)."""


@dataclass(frozen=True)
class Source:
    """One input object: its URI, its name relative to the input (the output is named after it), its content type."""

    uri: str
    relative: str
    content_type: str

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def open(self) -> io.RawIOBase:
        if self.is_s3:
            bucket, key = split_s3(self.uri)
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            stream = io.BufferedReader(StreamingBodyReader(body), buffer_size=BLOCK)
        else:
            stream = open(self.uri, "rb")  # noqa: SIM115 - the caller closes it
        if self.uri.lower().endswith(".gz"):
            return gzip.GzipFile(fileobj=stream)
        return stream

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number from 1, line without its end-of-line bytes), reading one block at a time."""
        with self.open() as stream:
            number, rest = 0, b""
            while block := stream.read(BLOCK):
                parts = (rest + block).split(b"\n") if rest else block.split(b"\n")
                rest = parts.pop()
                for part in parts:
                    number += 1
                    yield number, part[:-1] if part.endswith(b"\r") else part
            if rest:
                yield number + 1, rest.removesuffix(b"\r")

    def first_record(self) -> tuple[int, bytes] | None:
        """The first line that is not blank (the header, when the file has one)."""
        for number, line in self.lines():
            if line.strip():
                return number, line
        return None


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def s3_client():
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SourceError(
            "s3:// input needs boto3, which this environment lacks: copy the objects locally "
            "(aws s3 cp --recursive) or install boto3 into it"
        ) from None
    return boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"}))


def _typed(uri: str, relative: str, content_type: str | None) -> Source:
    found = content_type or content_type_for(uri)
    if found is None:
        raise SourceError(
            f"{uri}: the extension says neither CSV nor JSON Lines; name it {', '.join(EXTENSIONS)} (optionally "
            "followed by .gz), or give the content type (CONTENT_TYPE=text/csv)"
        )
    return Source(uri, relative, found)


def list_sources(location: str, content_type: str | None = None) -> tuple[list[Source], bool]:
    """The objects to transform, in a stable order, and whether the input is a folder or prefix (then the output
    is a folder with one <name>.out per object, as Batch Transform writes). Hidden and _-prefixed files are skipped."""
    if location.startswith("s3://"):
        bucket, prefix = split_s3(location)
        paginator = s3_client().get_paginator("list_objects_v2")
        keys = sorted(
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        )
        if len(keys) == 1 and keys[0] == prefix:
            return [_typed(location, Path(prefix).name, content_type)], False
        base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        keys = [k for k in keys if k.startswith(base) and not Path(k).name.startswith((".", "_"))]
        if not keys:
            raise SourceError(f"{location}: no objects under this prefix")
        return [_typed(f"s3://{bucket}/{k}", k[len(base) :], content_type) for k in keys], True
    path = Path(location)
    if path.is_file():
        return [_typed(str(path), path.name, content_type)], False
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        if not files:
            raise SourceError(f"{location}: the folder holds no files")
        return [_typed(str(p), p.relative_to(path).as_posix(), content_type) for p in files], True
    raise SourceError(f"INPUT={location}: no such file or folder (give a CSV or JSON Lines file, a folder or s3://)")
