"""Where a model repository lives: a folder, or S3 (or an S3-compatible
store) in the URL forms tritonserver itself reads:

    s3://bucket/prefix                    AWS, region from AWS_DEFAULT_REGION
    s3://host:port/bucket/prefix          an S3-compatible server over http
    s3://https://host:port/bucket/prefix  ... over https

Credentials come from the usual AWS environment variables, as tritonserver
takes them. Publishing to S3 keeps the promise publishing to a folder keeps,
without a rename: a version's files are uploaded first, then the configs of
the models that list it (``version_policy: specific``), then the ensemble's,
which pins it; each is one PUT, so a server loading at any moment sees the
old version or the whole new one. A failed upload deletes what it put.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

from . import repository
from .errors import ExportError

Location = Union[str, Path]


def is_s3(location: Location) -> bool:
    return str(location).startswith('s3://')


def location(text: str) -> Location:
    """A command-line repository: an s3:// URL as given (a Path would fold
    its '//'), anything else a folder."""
    return text if is_s3(text) else Path(text)


@dataclass(frozen=True)
class S3Url:
    url: str
    endpoint: Optional[str]  # http(s)://host:port, or None for AWS
    bucket: str
    prefix: str              # '' or 'a/b', no slashes at the ends

    @classmethod
    def parse(cls, url: str) -> 'S3Url':
        rest = url[len('s3://'):]
        scheme = 'http'
        for given in ('http://', 'https://'):
            if rest.startswith(given):
                scheme, rest = given[:-3], rest[len(given):]
        parts = rest.strip('/').split('/')
        endpoint = None
        if ':' in parts[0]:  # host:port, as tritonserver requires for these
            endpoint = f'{scheme}://{parts.pop(0)}'
        if not parts or not parts[0]:
            raise ExportError(f'{url}: no bucket in the repository URL '
                              '(s3://[host:port/]bucket[/prefix])')
        return cls(url, endpoint, parts[0], '/'.join(parts[1:]))

    def key(self, *parts: str) -> str:
        return '/'.join(p for p in (self.prefix, *parts) if p)


class FolderStore:
    def __init__(self, path: Location):
        self.path = Path(path)

    def models(self) -> List[str]:
        return sorted(d.name for d in self.path.iterdir()
                      if (d / 'config.pbtxt').is_file())

    def versions(self, model: str) -> List[int]:
        return repository.versions(self.path / model)

    def read(self, model: str, name: str = 'config.pbtxt') -> Optional[str]:
        file = self.path / model / name
        return file.read_text() if file.is_file() else None


class S3Store:
    def __init__(self, url: str):
        import boto3
        from botocore.config import Config
        self.url = S3Url.parse(url)
        self.s3 = boto3.client('s3', endpoint_url=self.url.endpoint,
                               config=Config(connect_timeout=5, read_timeout=60,
                                             retries={'max_attempts': 2}))

    def _failed(self, exc: Exception) -> ExportError:
        """One line naming the URL: unreachable, no such bucket, refused."""
        from botocore.exceptions import ClientError, NoCredentialsError
        if isinstance(exc, NoCredentialsError):
            reason = 'no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)'
        elif isinstance(exc, ClientError):
            code = exc.response.get('Error', {}).get('Code', '')
            reason = {'404': f'no bucket {self.url.bucket!r}',
                      'NoSuchBucket': f'no bucket {self.url.bucket!r}',
                      '403': 'access denied (bad credentials?)',
                      'InvalidAccessKeyId': 'unknown access key',
                      'SignatureDoesNotMatch': 'bad secret key'}.get(
                code, f'{code}: {exc.response.get("Error", {}).get("Message", "")}')
        else:
            reason = str(exc).splitlines()[0]
        return ExportError(f'model repository {self.url.url}: {reason}')

    def check(self) -> None:
        """Reachable, the bucket exists and the credentials are accepted."""
        try:
            self.s3.head_bucket(Bucket=self.url.bucket)
        except Exception as exc:  # botocore raises many kinds
            raise self._failed(exc) from None

    def _folders(self, key: str) -> List[str]:
        """The names of the 'folders' directly under ``key``."""
        pages = self.s3.get_paginator('list_objects_v2').paginate(
            Bucket=self.url.bucket, Prefix=key + '/' if key else '',
            Delimiter='/')
        return [p['Prefix'].rstrip('/').rsplit('/', 1)[-1]
                for page in pages for p in page.get('CommonPrefixes', [])]

    def models(self) -> List[str]:
        return sorted(self._folders(self.url.key()))

    def versions(self, model: str) -> List[int]:
        return sorted(int(n) for n in self._folders(self.url.key(model))
                      if n.isdigit())

    def read(self, model: str, name: str = 'config.pbtxt') -> Optional[str]:
        try:
            body = self.s3.get_object(Bucket=self.url.bucket,
                                      Key=self.url.key(model, name))['Body']
        except self.s3.exceptions.NoSuchKey:
            return None
        return body.read().decode()

    def keys(self) -> set:
        pages = self.s3.get_paginator('list_objects_v2').paginate(
            Bucket=self.url.bucket, Prefix=self.url.key())
        return {o['Key'] for page in pages for o in page.get('Contents', [])}

    def publish(self, staged: Path, ensembles: Sequence[str]) -> List[str]:
        """Upload a staged repository: every version file, then the other
        models' configs, then the ``ensembles``' configs, then delete the
        export's placements a staged model no longer has; the keys written.
        If a file fails, the files this call added are deleted (the configs
        are untouched, so the old version is still what is served)."""
        files = sorted(p for p in staged.rglob('*') if p.is_file())
        configs = [p for p in files if p.name == 'config.pbtxt'
                   or p.parent.name == repository.NAMED_CONFIGS]
        data = [p for p in files if p not in configs]
        # named placements before each default config, ensembles last
        configs.sort(key=lambda p: (p.parent.name in ensembles,
                                    p.name == 'config.pbtxt'))
        try:
            existing = self.keys()
        except Exception as exc:  # botocore and the network raise many kinds
            raise self._failed(exc) from None
        added = [k for k in self._upload(staged, data, on_error=existing)
                 if k not in existing]
        written = added + self._upload(staged, configs)
        self._remove_stale_placements(staged, configs, existing)
        return written

    def _remove_stale_placements(self, staged: Path, configs: Sequence[Path],
                                 existing: set) -> None:
        """The export's placements a staged model no longer has, deleted
        where an earlier publish (another format's) left them pinned to
        versions the new config no longer lists."""
        for model in sorted({p.relative_to(staged).parts[0] for p in configs}):
            placed = {p.stem for p in configs
                      if p.parent == staged / model / repository.NAMED_CONFIGS}
            for path in repository.stale_placements(model, placed):
                key = self.url.key(path)
                if key in existing:
                    self.s3.delete_object(Bucket=self.url.bucket, Key=key)

    def _upload(self, staged: Path, paths: Sequence[Path],
                on_error: Optional[set] = None) -> List[str]:
        """Upload ``paths`` in order; on a failure, with ``on_error`` (the
        keys that were there before) given, delete the others written."""
        written: List[str] = []
        try:
            for path in paths:
                key = self.url.key(*path.relative_to(staged).parts)
                self.s3.upload_file(str(path), self.url.bucket, key)
                written.append(key)
        except Exception as exc:  # botocore and the network raise many kinds
            for key in written if on_error is not None else ():
                if key not in on_error:
                    self.s3.delete_object(Bucket=self.url.bucket, Key=key)
            raise self._failed(exc) from None
        return written


def open_store(location: Location) -> Union[FolderStore, S3Store]:
    return S3Store(str(location)) if is_s3(location) else FolderStore(location)
