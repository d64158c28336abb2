"""Download a public dataset into a folder, as torchvision's and MedMNIST's ``download=True`` do -- but
only on request, never at run time (issue 26):

    python -m data.download NAME --to DIR [--url URL] [--sha256 HEX] [--no-prepare] [--size 64]

Each download is **resumable** (an interrupted one continues from the bytes it has, by an HTTP Range
request; a server that ignores Range starts over), **atomic** (it is written to ``FILE.part`` and
renamed only when complete: a partial download is never taken for a complete one), **verified**
(the SHA-256 where one is known or given -- a mismatch removes the file -- and otherwise the extracted
folder's structure, by the dataset's reader), then extracted into ``DIR/NAME`` (an archive's single
top folder stripped; archives inside it unpacked) and prepared for the runs (``data.prepare``).
``--url`` points at a mirror (or a local copy: ``file://``).

The sources are the publishers' (``SOURCES``); none of them can be reached from the machines this
suite is developed on, so their URLs are as documented by the publishers, not verified here. The
paper's Prostate data are not public: there is no source for them.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

from data.base import DataError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where a dataset is published: one ``archive`` (zip or tar) or an S3 ``bucket`` listing of files."""

    url: str
    kind: str = "archive"            # "archive" | "bucket"
    sha256: str | None = None        # of the archive, where the publisher gives one
    note: str = ""


SOURCES = {
    "openkbp": Source("https://github.com/ababier/open-kbp/archive/HEAD.zip",
                      note="the challenge's repository (provided-data/); its large files may be Git LFS pointers"),
    "ph2": Source("https://github.com/chelseaparlett/SkinCancerVariation/archive/HEAD.zip",
                  note="a public copy of PH2 (PH2Dataset/); the publisher's own page asks for a request form"),
    "ph2_criteria": Source("https://github.com/chelseaparlett/SkinCancerVariation/archive/HEAD.zip",
                           note="the PH2 archive (PH2Dataset/PH2_dataset.xlsx holds the criteria)"),
    "busi": Source("https://github.com/yirutsai/Breast-ultrasound-dataset/archive/HEAD.zip",
                   note="a public copy of BUSI (data/<class>/); the publisher's: https://scholar.cu.edu.eg/?q=afahmy/pages/dataset"),
    "ham10000": Source("https://dataverse.harvard.edu/api/access/dataset/:persistentId/?persistentId=doi:10.7910/DVN/DBW86T",
                       note="Harvard Dataverse, every file of the dataset as one zip (images in inner zips)"),
    "stoic": Source("https://stoic2021-training.s3.amazonaws.com/", kind="bucket",
                    note="AWS Open Data (registry.opendata.aws/stoic2021-training): metadata/ and data/mha/"),
}


class DownloadError(DataError):
    """A download that cannot be completed or verified; the message names the URL or file."""


def _open(url: str, start: int = 0, timeout: float = 60.0):
    request = urllib.request.Request(url, headers={"User-Agent": "ctan-bench", **(
        {"Range": f"bytes={start}-"} if start else {})})
    return urllib.request.urlopen(request, timeout=timeout)


def fetch(url: str, target: Path, sha256: str | None = None, progress: bool = True, log=print) -> Path:
    """``url`` into ``target``: resumed from ``target.part``, renamed when complete, checked against
    ``sha256`` (a mismatch deletes the file and raises). A finished ``target`` is reused when it matches."""
    target = Path(target)
    if target.is_file() and (sha256 is None or _sha256(target) == sha256.lower()):
        log(f"[download] {target.name}: already here")
        return target
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, have)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:          # the part is already whole: the server has nothing more
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None
    if response is not None:
        with response:
            resumed = bool(have) and getattr(response, "status", None) == 206
            if have and not resumed:
                log(f"[download] {target.name}: the server does not resume; starting over")
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            if have:
                log(f"[download] {target.name}: resuming at {have / 2**20:.1f} MiB")
            bar = _bar(total, have, target.name) if progress else None
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while True:
                        try:
                            chunk = response.read(CHUNK)
                        except (OSError, urllib.error.URLError) as exc:
                            raise DownloadError(f"{url}: the connection broke at {f.tell()} bytes ({exc}); "
                                                f"run the same command again to resume") from None
                        if not chunk:
                            break
                        f.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                    got = f.tell()
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and got < total:
                raise DownloadError(f"{url}: the server sent {got} of {total} bytes; run the same command "
                                    f"again to resume")
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256.lower():
            part.unlink()
            raise DownloadError(f"{url}: SHA-256 {digest} is not the published {sha256.lower()}: the file was "
                                f"corrupt and is removed; run the command again")
    part.replace(target)
    return target


def _bar(total, initial, name):
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_members(names: list[str], where: Path) -> None:
    base = where.resolve()
    for n in names:
        if not (base / n).resolve().is_relative_to(base):
            raise DownloadError(f"archive member {n!r} would land outside {where}: refused")


def extract(archive: Path, into: Path) -> None:
    """Unpack a zip or tar into ``into`` (members outside it refused), then any archives it held."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _safe_members(z.namelist(), into)
                z.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                _safe_members(t.getnames(), into)
                t.extractall(into, filter="data")
        else:
            raise DownloadError(f"{archive}: neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive}: a broken archive ({exc}); delete it and download again") from None
    for inner in sorted(p for p in into.rglob("*") if p.is_file() and p.suffix in (".zip", ".tgz", ".tar")
                        or p.name.endswith(".tar.gz")):
        extract(inner, inner.parent)
        inner.unlink()


def _strip_single_top(folder: Path) -> Path:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def bucket_keys(url: str) -> list[str]:
    """Every key of a public S3 bucket (ListObjectsV2, all pages)."""
    keys, token = [], None
    while True:
        query = {"list-type": "2", **({"continuation-token": token} if token else {})}
        try:
            with _open(f"{url}?{urllib.parse.urlencode(query)}") as r:
                root = ET.fromstring(r.read())
        except (urllib.error.URLError, OSError, ET.ParseError) as exc:
            raise DownloadError(f"{url}: cannot list the bucket ({exc})") from None
        ns = {"s3": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
        find = (lambda e, t: e.find(f"s3:{t}", ns)) if ns else (lambda e, t: e.find(t))
        for item in (root.findall("s3:Contents", ns) if ns else root.findall("Contents")):
            key = find(item, "Key").text
            if not key.endswith("/"):
                keys.append(key)
        truncated = find(root, "IsTruncated")
        token_el = find(root, "NextContinuationToken")
        if truncated is None or truncated.text != "true" or token_el is None:
            return keys
        token = token_el.text


def download(name: str, to: str | Path, url: str | None = None, sha256: str | None = None,
             progress: bool = True, log=print) -> Path:
    """Download, verify and extract dataset ``name`` into ``to/name``; returns the folder its reader
    reads (``data.prepare.find_root``)."""
    from data.prepare import find_root, reader

    if name not in SOURCES:
        raise DownloadError(f"no public source for {name!r}; these have one: {', '.join(SOURCES)} "
                            f"(the paper's Prostate data are not public)")
    source = SOURCES[name]
    url = url or source.url
    sha256 = sha256 or source.sha256
    to = Path(to).expanduser()
    to.mkdir(parents=True, exist_ok=True)
    dest = to / name
    found = find_root(name, to) if dest.is_dir() else None
    if found is not None:
        log(f"[download] {name}: already in {found}")
        return found
    if source.kind == "bucket":
        # into a hidden folder renamed when every file is there: a partial download is never taken for
        # the dataset, and the same command resumes it (finished files are kept, a broken one resumes)
        partial = to / f".{name}.partial"
        keys = bucket_keys(url)
        _safe_members(keys, partial)
        log(f"[download] {name}: {len(keys)} files from {url}")
        for k, key in enumerate(keys):
            path = partial.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            fetch(url.rstrip("/") + "/" + urllib.parse.quote(key), path, progress=progress, log=lambda _m: None)
            if progress and (k + 1) % 100 == 0:
                log(f"[download] {name}: {k + 1} of {len(keys)} files")
        if dest.exists():
            shutil.rmtree(dest)
        partial.rename(dest)
    else:
        archive = fetch(url, to / f"{name}.download", sha256, progress, log)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=to))
        try:
            extract(archive, staging)
            top = _strip_single_top(staging)
            if dest.exists():
                shutil.rmtree(dest)
            top.rename(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    found = find_root(name, to)
    if found is None:
        for candidate in sorted(p for p in dest.rglob("*") if p.is_dir() and len(p.relative_to(dest).parts) <= 3):
            if reader(name).looks_like(candidate):
                found = candidate
                break
    if found is None:
        raise DownloadError(f"{dest}: what {url} gave does not hold {name}'s layout ({reader(name).LAYOUT}); "
                            f"nothing was prepared")
    if source.kind == "archive":
        (to / f"{name}.download").unlink(missing_ok=True)   # extracted and verified: the archive is not needed
    log(f"[download] {name}: {found}")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.download", description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help=f"one of: {', '.join(SOURCES)}")
    ap.add_argument("--to", required=True, help="folder to download into (the dataset lands in TO/NAME)")
    ap.add_argument("--url", default=None, help="a mirror or a local copy instead of the publisher's URL")
    ap.add_argument("--sha256", default=None, help="the archive's expected SHA-256")
    ap.add_argument("--no-prepare", action="store_true", help="download and extract only")
    ap.add_argument("--size", type=int, default=64, help="image side to prepare at (default 64, the public profile's)")
    ap.add_argument("--skip-bad", action="store_true", help="prepare: skip unreadable samples with a warning")
    args = ap.parse_args(argv)
    try:
        root = download(args.name, args.to, args.url, args.sha256)
        if not args.no_prepare:
            from data.prepare import prepare
            prepare(args.name, root, args.size, skip_bad=args.skip_bad)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"use it with: python reproduce.py --dataset {args.name} --data real --data-root {Path(args.to)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
