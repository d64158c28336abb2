"""Download helpers (issue 26) against a local HTTP server started here (nothing leaves 127.0.0.1): a
complete download, an interrupted one that resumes with a Range request, a corrupt one that is refused
and removed, an archive without the dataset's layout, and an S3-style bucket listing."""
from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from data import download as D
from tests.real_fixtures import write_openkbp, write_stoic


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_after: dict[str, int] = {}      # path -> bytes sent before the connection drops (once)
    ranges: list[str] = []

    def log_message(self, *args):       # keep the test output clean
        pass

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/bucket/" and "list-type=2" in query:
            body = self.files["listing"]
        elif path in self.files:
            body = self.files[path]
        else:
            self.send_error(404)
            return
        start = 0
        if "Range" in self.headers:
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.cut_after.pop(path, None)
        self.wfile.write(body[start:cut] if cut is not None else body[start:])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True


@pytest.fixture()
def server():
    _Handler.files, _Handler.cut_after, _Handler.ranges = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def _openkbp_zip(tmp_path: Path) -> bytes:
    """The repository archive's shape: one top folder holding provided-data/."""
    src = tmp_path / "src"
    write_openkbp(src / "open-kbp-main" / "provided-data")
    archive = tmp_path / "openkbp.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, p.relative_to(src).as_posix())
    return archive.read_bytes()


def test_a_complete_download_is_verified_extracted_and_found_by_the_reader(server, tmp_path):
    url, handler = server
    body = _openkbp_zip(tmp_path)
    handler.files["/openkbp.zip"] = body
    log = []
    root = D.download("openkbp", tmp_path / "data", url=url + "/openkbp.zip",
                      sha256=hashlib.sha256(body).hexdigest(), progress=False, log=log.append)
    assert root == (tmp_path / "data" / "openkbp" / "provided-data").resolve()
    assert (root / "train-pats" / "pt_1" / "ct.csv").is_file()
    assert not list((tmp_path / "data").glob("*.part")) and not (tmp_path / "data" / "openkbp.download").exists()
    again = []
    assert D.download("openkbp", tmp_path / "data", url=url + "/openkbp.zip", progress=False,
                      log=again.append) == root and "already in" in again[0]


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    url, handler = server
    body = _openkbp_zip(tmp_path)
    handler.files["/openkbp.zip"] = body
    handler.cut_after["/openkbp.zip"] = len(body) // 3
    with pytest.raises(D.DownloadError, match="run the same command again to resume"):
        D.download("openkbp", tmp_path / "data", url=url + "/openkbp.zip", progress=False, log=lambda m: None)
    part = tmp_path / "data" / "openkbp.download.part"
    assert part.stat().st_size == len(body) // 3                       # kept, and never renamed as complete
    assert not (tmp_path / "data" / "openkbp.download").exists() and not (tmp_path / "data" / "openkbp").exists()
    log = []
    root = D.download("openkbp", tmp_path / "data", url=url + "/openkbp.zip",
                      sha256=hashlib.sha256(body).hexdigest(), progress=False, log=log.append)
    assert handler.ranges == [f"bytes={len(body) // 3}-"] and any("resuming at" in m for m in log)
    assert (root / "test-pats" / "pt_241").is_dir()


def test_a_corrupt_download_is_refused_and_removed(server, tmp_path):
    url, handler = server
    body = _openkbp_zip(tmp_path)
    handler.files["/openkbp.zip"] = body[:100] + b"x" + body[101:]
    with pytest.raises(D.DownloadError, match="SHA-256 .* is not the published .*corrupt and is removed"):
        D.download("openkbp", tmp_path / "data", url=url + "/openkbp.zip",
                   sha256=hashlib.sha256(body).hexdigest(), progress=False, log=lambda m: None)
    assert list((tmp_path / "data").iterdir()) == []


def test_an_archive_without_the_layout_and_a_missing_file_are_one_clear_error(server, tmp_path):
    url, handler = server
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("repo-main/README.md", "not a dataset")
    handler.files["/other.zip"] = archive.read_bytes()
    with pytest.raises(D.DownloadError, match="does not hold openkbp's layout"):
        D.download("openkbp", tmp_path / "a", url=url + "/other.zip", progress=False, log=lambda m: None)
    with pytest.raises(D.DownloadError, match="HTTP 404"):
        D.download("openkbp", tmp_path / "b", url=url + "/missing.zip", progress=False, log=lambda m: None)
    assert D.main(["prostate", "--to", str(tmp_path / "c")]) == 2


def test_a_bucket_listing_downloads_every_file_into_place(server, tmp_path):
    url, handler = server
    src = tmp_path / "stoic-src"
    write_stoic(src, per_stratum=1)
    keys = [p.relative_to(src).as_posix() for p in sorted(src.rglob("*")) if p.is_file()]
    for k in keys:
        handler.files[f"/bucket/{k}"] = (src / k).read_bytes()
    contents = "".join(f"<Contents><Key>{k}</Key></Contents>" for k in keys)
    handler.files["listing"] = (f'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                                f'2006-03-01/"><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>').encode()
    root = D.download("stoic", tmp_path / "data", url=url + "/bucket/", progress=False, log=lambda m: None)
    assert root == (tmp_path / "data" / "stoic").resolve()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == keys
    assert not (tmp_path / "data" / ".stoic.partial").exists()


def test_the_command_downloads_and_prepares(server, tmp_path, monkeypatch, capsys):
    url, handler = server
    handler.files["/openkbp.zip"] = _openkbp_zip(tmp_path)
    monkeypatch.setenv("CTAN_DATA_CACHE", str(tmp_path / "cache"))
    assert D.main(["openkbp", "--to", str(tmp_path / "data"), "--url", url + "/openkbp.zip", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "prepared" in out and f"--data-root {tmp_path / 'data'}" in out
    assert list((tmp_path / "cache" / "openkbp").iterdir())
