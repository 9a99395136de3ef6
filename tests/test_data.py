"""Data loaders: shapes and ranges, MD5 verification, corrupt files, root resolution, and the
download path tested against a local HTTP server on 127.0.0.1 serving the offline copy."""

import functools
import hashlib
import http.server
import pathlib
import shutil
import threading

import pytest
import torch

from distillkit.data import (
    DatasetFileError,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    make_moons,
    make_subgroup_blobs,
    resolve_root,
)


def test_digits_split_is_stratified_and_disjoint():
    x_tr, y_tr = load_digits("train")
    x_te, y_te = load_digits("test")
    x_all, y_all = load_digits("all")
    assert x_tr.shape == (1352, 1, 8, 8) and x_te.shape == (445, 1, 8, 8)
    assert x_all.shape[0] == x_tr.shape[0] + x_te.shape[0] == 1797
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert float(x_all.min()) == 0.0 and float(x_all.max()) == 1.0
    # every class is split about 3:1
    ratio = torch.bincount(y_te).float() / torch.bincount(y_all).float()
    assert torch.all((ratio > 0.2) & (ratio < 0.3))
    # a row cannot be both in train and test
    rows_tr = {tuple(r.tolist()) + (int(c),) for r, c in zip(x_tr.flatten(1), y_tr)}
    rows_te = [tuple(r.tolist()) + (int(c),) for r, c in zip(x_te.flatten(1), y_te)]
    assert sum(r in rows_tr for r in rows_te) < 5  # digits has a few exact duplicate images


def test_digits_bad_split():
    with pytest.raises(ValueError, match="'split' parameter of load_digits"):
        load_digits("validation")


def test_mnist_and_fashion_shapes(mnist_root):
    x, y = load_mnist(split="test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) == 1.0
    assert torch.bincount(y).tolist()[:3] == [980, 1135, 1032]
    x, y = load_fashion_mnist(split="test")
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10


def test_mnist_train_labels_match_reference(mnist_root):
    _, y = load_mnist(split="train", download=False)
    assert y.shape == (60000,)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_bad_arguments(mnist_root):
    with pytest.raises(ValueError, match="'split' parameter of load_mnist"):
        load_mnist(split="val")
    with pytest.raises(TypeError, match="'download' parameter of load_fashion_mnist"):
        load_fashion_mnist(split="test", download="yes")
    with pytest.raises(TypeError, match="'root' parameter"):
        load_mnist(root=3)


def test_root_resolution(monkeypatch, tmp_path):
    assert resolve_root(tmp_path) == tmp_path
    monkeypatch.setenv("DISTILLKIT_DATA", str(tmp_path / "env"))
    assert resolve_root() == tmp_path / "env"
    monkeypatch.delenv("DISTILLKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_root() == tmp_path / "cache" / "distillkit"


def _copy_mnist_test(src_root: pathlib.Path, dst_root: pathlib.Path):
    raw = dst_root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(src_root / "MNIST" / "raw" / name, raw / name)
    return raw


def test_missing_file_without_download_says_how_to_fix(tmp_path, mnist_root):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(root=tmp_path, split="test", download=False)


def test_truncated_file_is_an_error_naming_the_file(tmp_path, mnist_root):
    raw = _copy_mnist_test(mnist_root, tmp_path)
    target = raw / "t10k-images-idx3-ubyte.gz"
    data = target.read_bytes()
    target.chmod(0o644)
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFileError, match="t10k-images-idx3-ubyte.gz.*corrupt or truncated.*Delete it"):
        load_mnist(root=tmp_path, split="test")
    # nothing was overwritten behind the user's back
    assert target.read_bytes() == data[: len(data) // 2]


@pytest.fixture
def local_mirror(mnist_root, tmp_path):
    """An HTTP server on 127.0.0.1 serving the offline MNIST files, plus a corrupt copy."""
    served = tmp_path / "served"
    (served / "good").mkdir(parents=True)
    (served / "bad").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        data = (mnist_root / "MNIST" / "raw" / name).read_bytes()
        (served / "good" / name).write_bytes(data)
        (served / "bad" / name).write_bytes(data[:-100] + b"x" * 100)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_from_local_server_verifies_and_loads(local_mirror, tmp_path):
    root = tmp_path / "fresh"
    x, y = load_mnist(root=root, split="test", mirrors=[f"{local_mirror}/good/"], progress=False)
    assert x.shape == (10000, 1, 28, 28)
    saved = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    assert hashlib.md5(saved.read_bytes()).hexdigest() == "9fb629c4189551a2d022fa330f9573f3"
    assert not list((root / "MNIST" / "raw").glob("*.part"))


def test_download_falls_back_to_next_mirror_and_rejects_corrupt(local_mirror, tmp_path):
    root = tmp_path / "fresh"
    # first mirror serves corrupt files, second is fine: the loader must skip the first
    x, _ = load_mnist(root=root, split="test", mirrors=[f"{local_mirror}/bad/", f"{local_mirror}/good/"], progress=False)
    assert x.shape[0] == 10000
    # only corrupt mirrors: a clear error and no file left behind
    root2 = tmp_path / "fresh2"
    with pytest.raises(DatasetFileError, match="Could not download t10k-images-idx3-ubyte.gz.*MD5"):
        load_mnist(root=root2, split="test", mirrors=[f"{local_mirror}/bad/"], progress=False)
    assert not any((root2 / "MNIST" / "raw").glob("*"))


def test_download_unreachable_mirror(tmp_path, mnist_root):
    with pytest.raises(DatasetFileError, match="Could not download"):
        load_mnist(root=tmp_path, split="test", mirrors=["http://127.0.0.1:9/"], progress=False)


def test_subgroup_blobs_counts_and_determinism():
    x, y, g = make_subgroup_blobs(1000, n_classes=2, modes_per_class=3, minority_fraction=0.2, generator=0)
    assert x.shape == (1000, 2) and torch.bincount(y).tolist() == [500, 500]
    # 20 % of each class in the two minority modes, split equally
    assert torch.bincount(g).tolist() == [400, 50, 50, 400, 50, 50]
    assert torch.equal(g // 3, y)
    x2, _, _ = make_subgroup_blobs(1000, n_classes=2, modes_per_class=3, minority_fraction=0.2, generator=0)
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="'minority_fraction' parameter of make_subgroup_blobs"):
        make_subgroup_blobs(100, minority_fraction=1.0)


def test_moons():
    x, y = make_moons(101, noise=0.0, generator=1)
    assert x.shape == (101, 2) and torch.bincount(y).tolist() == [51, 50]
    upper = x[y == 0]
    assert torch.allclose(upper.norm(dim=1), torch.ones(51), atol=1e-5)  # noise-free upper moon is the unit circle
    with pytest.raises(ValueError, match="'noise' parameter of make_moons"):
        make_moons(10, noise=-1.0)


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Announces a 10 kB file and sends one byte every 0.1 s (urlopen's timeout never fires)."""

    def do_GET(self):  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        try:
            for _ in range(300):  # at most 30 s, so a broken test cannot hang the suite
                self.wfile.write(b"x")
                self.wfile.flush()
                threading.Event().wait(0.1)
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def trickle_mirror():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_deadline_stops_a_trickling_mirror_and_removes_the_part_file(trickle_mirror, tmp_path):
    import time

    start = time.monotonic()
    with pytest.raises(DatasetFileError, match=r"Could not download t10k-images.*deadline of 1 s \(\d+ bytes"):
        load_mnist(root=tmp_path, split="test", mirrors=[trickle_mirror], progress=False, deadline=1.0)
    assert time.monotonic() - start < 5.0
    assert not list((tmp_path / "MNIST" / "raw").glob("*")), "a .part file was left behind"


def test_download_single_string_mirror_is_one_mirror(trickle_mirror, tmp_path):
    # a str is one mirror (not a sequence of one-letter URLs): the error names the whole URL
    with pytest.raises(DatasetFileError, match=f"Tried: {trickle_mirror}t10k-images-idx3-ubyte.gz: no complete"):
        load_fashion_mnist(root=tmp_path, split="test", mirrors=trickle_mirror, progress=False, deadline=0.5)
    assert not list((tmp_path / "FashionMNIST" / "raw").glob("*"))


def test_download_malformed_mirror_is_named_and_leaves_nothing(tmp_path):
    with pytest.raises(DatasetFileError, match="Tried: nowhere/t10k-images-idx3-ubyte.gz: unknown url type"):
        load_mnist(root=tmp_path, split="test", mirrors=["nowhere"], progress=False)
    assert not list((tmp_path / "MNIST" / "raw").glob("*"))


def test_download_interrupt_removes_the_part_file(trickle_mirror, tmp_path, monkeypatch):
    from distillkit.data import idx

    def interrupted(*args):
        (tmp_path / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(idx, "_md5", interrupted)  # called once the bytes are in: interrupt there
    monkeypatch.setattr(idx, "_download_one", lambda url, tmp, *a: tmp.write_bytes(b"partial"))
    with pytest.raises(KeyboardInterrupt):
        load_mnist(root=tmp_path, split="test", mirrors=[trickle_mirror], progress=False)
    assert not list((tmp_path / "MNIST" / "raw").glob("*"))
