"""download(): a local HTTP server serves archives the tests build; no network needed."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from release_files import PLAYS_360K, write_lastfm1k, write_lastfm360k, write_ml100k

from recft.data.download import download
from recft.data.movielens import load_movielens
from recft.errors import DataError


class _Server:
    def __init__(self, root: Path) -> None:
        self.root, self.requests = root, []
        handler = functools.partial(self._Handler, directory=str(root))
        handler.func.log_message = lambda *args: None  # keep test output quiet
        handler.func.server_ref = self
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    class _Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.server_ref.requests.append(self.path)
            super().do_GET()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "served"
    root.mkdir()
    running = _Server(root)
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def _zip_folder(folder: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, prefix + path.name)
    return buffer.getvalue()


def _serve(server: _Server, name: str, data: bytes) -> tuple[str, str]:
    (server.root / name).write_bytes(data)
    return server.url(name), hashlib.sha256(data).hexdigest()


def _leftovers(data_dir: Path) -> list[str]:
    """Everything but the empty .downloads folder: no .part file, no staging, no dataset."""
    found = [p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")]
    return [f for f in found if f != ".downloads"]


def test_download_verifies_extracts_and_normalises_folder(tmp_path: Path, server: _Server) -> None:
    release = write_ml100k(tmp_path / "src")
    url, digest = _serve(server, "ml-100k.zip", _zip_folder(release, prefix="ml-100k/"))
    data_dir = tmp_path / "cache"
    folder = download("ml-100k", data_dir, url=url, sha256=digest, progress=False)
    assert folder == data_dir / "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["u.data", "u.genre", "u.item", "u.user"]
    assert (folder / "u.item").read_bytes() == (release / "u.item").read_bytes()
    assert len(load_movielens("ml-100k", data_dir=data_dir)) == 4
    assert sorted(_leftovers(data_dir)) == ["ml-100k", *(f"ml-100k/{n}" for n in
                                                         ("u.data", "u.genre", "u.item", "u.user"))]
    # a complete folder is not fetched again unless forced
    download("ml-100k", data_dir, url=url, sha256=digest, progress=False)
    assert len(server.requests) == 1
    download("ml-100k", data_dir, url=url, sha256=digest, force=True, progress=False)
    assert len(server.requests) == 2


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, server: _Server) -> None:
    url, _ = _serve(server, "ml-100k.zip", _zip_folder(write_ml100k(tmp_path / "src")))
    data_dir = tmp_path / "cache"
    with pytest.raises(DataError, match="sha256 checksum mismatch: expected 0000"):
        download("ml-100k", data_dir, url=url, sha256="0" * 64, progress=False)
    assert _leftovers(data_dir) == []
    # the release's own MD5 applies to any mirror of the official archive
    with pytest.raises(DataError, match="md5 checksum mismatch: expected 0e33842e"):
        download("ml-100k", data_dir, url=url, progress=False)


def test_truncated_archive_is_an_error(tmp_path: Path, server: _Server) -> None:
    data = _zip_folder(write_ml100k(tmp_path / "src"))
    url, digest = _serve(server, "ml-100k.zip", data[: len(data) // 2])
    data_dir = tmp_path / "cache"
    with pytest.raises(DataError, match="corrupt or truncated"):
        download("ml-100k", data_dir, url=url, sha256=digest, progress=False)
    assert _leftovers(data_dir) == []


def test_failure_keeps_the_previous_complete_folder(tmp_path: Path, server: _Server) -> None:
    data_dir = tmp_path / "cache"
    write_ml100k(data_dir / "ml-100k")
    url, digest = _serve(server, "ml-100k.zip", b"not an archive")
    with pytest.raises(DataError, match="not a zip or tar archive"):
        download("ml-100k", data_dir, url=url, sha256=digest, force=True, progress=False)
    assert len(load_movielens("ml-100k", data_dir=data_dir)) == 4
    assert sorted(_leftovers(data_dir))[0] == "ml-100k"


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "ml-100k/../../evil.txt",
                                    "C:/evil.txt"])
def test_path_traversal_member_is_rejected(tmp_path: Path, server: _Server, member: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("u.data", "1\t1\t5\t1\n")
        bundle.writestr("u.item", "1|A (1995)|||" + "|0" * 19 + "\n")
        bundle.writestr(member, "gotcha")
    url, digest = _serve(server, "ml-100k.zip", buffer.getvalue())
    data_dir = tmp_path / "cache"
    with pytest.raises(DataError, match="unsafe archive member"):
        download("ml-100k", data_dir, url=url, sha256=digest, progress=False)
    assert _leftovers(data_dir) == []
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_member_is_rejected(tmp_path: Path, server: _Server) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("u.data", "1\t1\t5\t1\n")
        link = zipfile.ZipInfo("u.item")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "/etc/passwd")
    url, digest = _serve(server, "ml-100k.zip", buffer.getvalue())
    with pytest.raises(DataError, match="symbolic link"):
        download("ml-100k", tmp_path / "cache", url=url, sha256=digest, progress=False)
    assert _leftovers(tmp_path / "cache") == []


def test_tar_gz_release_and_missing_files(tmp_path: Path, server: _Server) -> None:
    source = write_lastfm360k(tmp_path / "src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.add(source, arcname="lastfm-dataset-360K")
    url, digest = _serve(server, "lastfm-dataset-360K.tar.gz", buffer.getvalue())
    folder = download("lastfm-360k", tmp_path / "cache", url=url, sha256=digest, progress=False)
    assert (folder / PLAYS_360K).read_bytes() == (source / PLAYS_360K).read_bytes()
    # an archive without the release's files never becomes a dataset folder
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as bundle:
        bundle.writestr("readme.txt", "nothing here")
    url, digest = _serve(server, "x.zip", empty.getvalue())
    with pytest.raises(DataError, match=r"archive lacks \['user_artists.dat', 'artists.dat'\]"):
        download("lastfm-2k", tmp_path / "cache2", url=url, sha256=digest, progress=False)
    assert _leftovers(tmp_path / "cache2") == []


def test_published_file_md5_is_checked(tmp_path: Path, server: _Server) -> None:
    url, digest = _serve(server, "1k.zip", _zip_folder(write_lastfm1k(tmp_path / "src")))
    with pytest.raises(DataError, match="differs from the release's 64747b21"):
        download("lastfm-1k", tmp_path / "cache", url=url, sha256=digest, progress=False)
    assert _leftovers(tmp_path / "cache") == []


def test_unknown_name_and_unreachable_url(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="downloadable: ml-100k"):
        download("ml-2m", tmp_path)
    with pytest.raises(DataError, match="download failed") as caught:
        download("ml-100k", tmp_path, url="http://127.0.0.1:9/ml-100k.zip", progress=False)
    assert caught.value.hint
    assert _leftovers(tmp_path) == []
