"""labkit.assets against real HTTP: a server on 127.0.0.1 serving fixture files, real caches in
temporary folders, and the real torchvision and transformers loading code.

No model hub is reached: an unreachable network is made real by pointing the standard proxy
variables at a closed port (or at one that accepts and never answers).
"""

import hashlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
import torch

from labkit.assets import (REGISTRY, AssetMissing, ChecksumMismatch, Dataset, DownloadError,
                           TextModel, VisionWeights, load_text_model, load_vision_model)
from labkit.assets import store
from labkit.instructor.packs import PackError, pack, unpack
from labkit.assets.registry import get_asset

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = random.Random(0).randbytes(300_000)  # the same in every xdist worker


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in files.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


ZIP = zipped({"toyset/train/a/1.txt": b"one", "toyset/train/b/2.txt": b"two"})


class Server:
    """Serves fixture files, one cut short halfway, and records every request."""

    def __init__(self):
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                name = self.path.strip("/")
                body = {"good.bin": PAYLOAD, "truncated.bin": PAYLOAD, "toyset.zip": ZIP}.get(name)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name == "truncated.bin":
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty TORCH_HOME, HF_HOME and LABKIT_DATA, both modes off."""
    def point_to(folder: Path):
        monkeypatch.setenv("TORCH_HOME", str(folder / "torch"))
        monkeypatch.setenv("HF_HOME", str(folder / "hf"))
        monkeypatch.setenv("LABKIT_DATA", str(folder / "data"))
        return folder
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("LABKIT_OFFLINE", "0")
    monkeypatch.setenv("LABKIT_STANDIN", "0")
    point_to(tmp_path / "caches")
    return point_to


def no_network(monkeypatch, port: int):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def dataset(server, route: str, sha256: str, size: int) -> Dataset:
    return Dataset("toyset", "toyset", f"{server.url}/{route}", sha256, size, licence="test")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- downloads -----------------------------------------------------------------------------

def test_good_download_is_verified_cached_and_not_fetched_again(server, caches, tmp_path):
    asset = dataset(server, "toyset.zip", sha(ZIP), len(ZIP))
    root = store.fetch(asset, progress=False)
    assert files_under(root) == [".labkit-manifest.json", "train/a/1.txt", "train/b/2.txt"]
    assert store.status(asset) == "present" and store.verify(asset)[0]
    seen = len(server.requests)
    assert store.fetch(asset, progress=False) == root
    assert len(server.requests) == seen == 1
    (root / "train/a/1.txt").write_bytes(b"changed")
    ok, detail = store.verify(asset)
    assert not ok and "train/a/1.txt" in detail


@pytest.mark.parametrize("route, sha256, size, error, words", [
    ("good.bin", sha(b"something else"), len(PAYLOAD), ChecksumMismatch, "sha256 is"),
    ("truncated.bin", sha(PAYLOAD), len(PAYLOAD), DownloadError, "sha256 is"),  # cut short
    ("missing.bin", sha(PAYLOAD), len(PAYLOAD), DownloadError, "HTTP 404"),
])
def test_failed_download_leaves_nothing_in_the_cache(server, caches, tmp_path, route, sha256,
                                                     size, error, words):
    asset = dataset(server, route, sha256, size)
    with pytest.raises(error, match=words):
        store.fetch(asset, progress=False)
    assert store.status(asset) == "missing"
    assert files_under(tmp_path / "caches") == []


def test_server_that_never_answers_fails_within_the_timeout(caches, silent_port, tmp_path):
    asset = Dataset("toyset", "toyset", f"http://127.0.0.1:{silent_port}/x.bin", sha(PAYLOAD),
                    len(PAYLOAD), "test")
    start = time.monotonic()
    with pytest.raises(DownloadError, match="no answer within 1 s"):
        store.fetch(asset, timeout=1, progress=False)
    assert time.monotonic() - start < 5
    assert files_under(tmp_path / "caches") == []


def test_archive_member_escaping_its_folder_is_refused(server, caches, tmp_path):
    # zipfile itself strips "..", so a tar tries to escape instead.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        bundle.addfile(info, io.BytesIO(b"bad"))
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="not unpacked"):
        store.extract_archive(archive, tmp_path / "target")
    assert not list(tmp_path.rglob("escaped.txt"))


# --- loading: cache, then download, then a clear error -------------------------------------

@pytest.mark.parametrize("network", ["refused", "silent"])
def test_missing_weights_without_network_give_the_fix_in_seconds(caches, monkeypatch, silent_port,
                                                                   network):
    no_network(monkeypatch, closed_port() if network == "refused" else silent_port)
    start = time.monotonic()
    with pytest.raises(AssetMissing) as error:
        load_vision_model("resnet18")
    assert time.monotonic() - start < 10
    message = str(error.value)
    for words in ("resnet18", "python -m labkit assets fetch resnet18", "assets unpack",
                  "LABKIT_STANDIN=1"):
        assert words in message
    assert files_under(Path(os.environ["TORCH_HOME"]).parent) == []


@pytest.mark.parametrize("network", ["refused", "silent"])
def test_missing_text_model_without_network_gives_the_fix(caches, monkeypatch, silent_port,
                                                           network):
    # huggingface_hub's snapshot_download alone retries five times (about 25 s when refused).
    import transformers  # noqa: F401  (imported before the clock starts)

    no_network(monkeypatch, closed_port() if network == "refused" else silent_port)
    start = time.monotonic()
    with pytest.raises(AssetMissing, match="assets fetch bert-tiny"):
        load_text_model("bert-tiny")
    assert time.monotonic() - start < 10
    assert files_under(Path(os.environ["HF_HOME"]).parent) == []


def test_offline_mode_does_not_try_to_download(caches, monkeypatch, server):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    from labkit.assets import ensure
    with pytest.raises(AssetMissing, match="offline mode is on"):
        ensure(dataset(server, "good.bin", sha(PAYLOAD), len(PAYLOAD)))
    assert server.requests == []


def test_offline_argument_overrides_the_environment(caches, server):
    # A lesson's OFFLINE = True parameter reaches the loaders as offline=True.
    from labkit.assets import ensure
    with pytest.raises(AssetMissing, match="offline mode is on"):
        ensure(dataset(server, "good.bin", sha(PAYLOAD), len(PAYLOAD)), offline=True)
    assert server.requests == []
    with pytest.raises(AssetMissing, match="offline mode is on"):
        load_vision_model("resnet18", offline=True)


# --- stand-in mode ---------------------------------------------------------------------------

VISION = [name for name, asset in REGISTRY.items() if isinstance(asset, VisionWeights)]
TEXT = [name for name, asset in REGISTRY.items() if isinstance(asset, TextModel)]


@pytest.mark.parametrize("name", VISION)
def test_standin_vision_model_builds_runs_and_says_so(name, caches, capsys):
    model, weights = load_vision_model(name, standin=True)
    assert "STAND-IN MODE" in capsys.readouterr().out
    side = weights.transforms().crop_size[0]
    with torch.no_grad():
        logits = model.eval()(torch.rand(1, 3, side, side))
    assert logits.shape == (1, len(weights.meta["categories"])) == (1, 1000)


@pytest.mark.parametrize("name", TEXT)
def test_standin_text_model_builds_runs_and_says_so(name, caches, capsys):
    model, tokenizer = load_text_model(name, task="masked-lm", standin=True)
    assert "STAND-IN MODE" in capsys.readouterr().out
    batch = tokenizer(["The lesson was clear.", "Bees visit [MASK] flowers."], padding=True,
                      return_tensors="pt")
    assert tokenizer.convert_ids_to_tokens(int(batch["input_ids"][0, 0])) == "[CLS]"
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape[-1] == model.config.vocab_size == 30522


def test_standin_switch_comes_from_the_environment(caches, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_STANDIN", "1")
    load_vision_model("mobilenet_v3_small")
    assert "STAND-IN MODE" in capsys.readouterr().out


def place_weights(name: str) -> Path:
    """Save a stand-in's weights where torchvision keeps the pinned file (wrong checksum).

    GoogLeNet's published file holds its auxiliary heads (torchvision drops them after loading).
    """
    extra = {"aux_logits": True} if name == "googlenet" else {}
    model, _ = load_vision_model(name, standin=True, **extra)
    path = store.location(get_asset(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("name", VISION)
def test_standin_has_exactly_the_pretrained_architecture(name, caches):
    # torchvision's own weights path loads the file strictly, so any difference between the
    # stand-in and the pre-trained network (a layer, a shape, an auxiliary head) fails here.
    place_weights(name)
    model, weights = load_vision_model(name, standin=False)
    standin, _ = load_vision_model(name, standin=True)
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    assert shapes == {key: value.shape for key, value in standin.state_dict().items()}
    assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]
    ok, detail = store.verify(get_asset(name))
    assert not ok and get_asset(name).sha256_prefix in detail  # not the published file


def place_text_model(name: str) -> None:
    """A stand-in saved in the hub cache's own layout: blobs named by sha256, snapshot links."""
    asset = get_asset(name)
    model, tokenizer = load_text_model(name, standin=True)
    snapshot = store.location(asset) / "snapshots" / asset.revision
    blobs = store.location(asset) / "blobs"
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    blobs.mkdir(parents=True)
    for file in list(snapshot.iterdir()):
        blob = blobs / sha(file.read_bytes())
        file.replace(blob)
        file.symlink_to(os.path.relpath(blob, snapshot))
    (store.location(asset) / "refs").mkdir()
    (store.location(asset) / "refs" / "main").write_text(asset.revision)


def test_text_model_loads_from_the_hub_cache_offline(caches, monkeypatch):
    place_text_model("bert-tiny")
    no_network(monkeypatch, closed_port())
    model, tokenizer = load_text_model("bert-tiny", task="sequence-classification", num_labels=2)
    assert model.config.num_labels == 2 and model.config.num_hidden_layers == 2
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id
    asset = get_asset("bert-tiny")
    assert store.verify(asset)[0]
    snapshot = store.location(asset) / "snapshots" / asset.revision
    (snapshot / "model.safetensors").resolve().write_bytes(b"tampered")
    ok, detail = store.verify(asset)
    assert not ok and "does not match" in detail


# --- pack and unpack -------------------------------------------------------------------------

def test_pack_then_unpack_on_a_machine_without_network(server, caches, monkeypatch, tmp_path):
    toy = dataset(server, "toyset.zip", sha(ZIP), len(ZIP))
    registry = {"toyset": toy, "resnet18": get_asset("resnet18"), "bert-tiny": get_asset("bert-tiny")}
    store.fetch(toy, progress=False)
    place_weights("resnet18")
    place_text_model("bert-tiny")
    archive = tmp_path / "course-assets.tar"
    assert sorted(pack(archive, registry=registry)) == ["bert-tiny", "resnet18", "toyset"]

    caches(tmp_path / "lab-machine")   # a fresh machine: empty caches, no network
    server.close()
    no_network(monkeypatch, closed_port())
    results = unpack(archive, registry=registry)
    assert results["toyset"][0] and results["bert-tiny"][0]
    assert not results["resnet18"][0]  # the placed file is a stand-in: verify says so
    assert store.status(toy) == "present" and store.fetch(toy) == store.location(toy)
    load_vision_model("resnet18")
    load_text_model("bert-tiny")
    assert not list((tmp_path / "lab-machine" / "data").glob(".unpack-*"))


def test_pack_refuses_what_is_not_fetched(caches, tmp_path):
    with pytest.raises(PackError, match="assets fetch resnet18"):
        pack(tmp_path / "x.tar", ["resnet18"])
    with pytest.raises(PackError, match="Nothing is fetched"):
        pack(tmp_path / "x.tar")


def test_unpack_refuses_foreign_and_escaping_archives(caches, tmp_path):
    def archive(entries: dict[str, bytes]) -> Path:
        path = tmp_path / f"pack{len(list(tmp_path.glob('pack*')))}.tar"
        with tarfile.open(path, "w") as bundle:
            for name, content in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                bundle.addfile(info, io.BytesIO(content))
        return path

    index = json.dumps({"format": 1, "assets": {}}).encode()
    with pytest.raises(PackError, match="not a labkit asset pack"):
        unpack(archive({"data/x/file": b"x"}))
    with pytest.raises(PackError, match="outside the course's cache sections"):
        unpack(archive({"labkit-pack.json": index, "etc/passwd": b"x"}))
    with pytest.raises(PackError, match="not unpacked"):
        unpack(archive({"labkit-pack.json": index, "data/../../../escaped": b"x"}))
    assert not list(tmp_path.rglob("escaped")) and not list(tmp_path.rglob("passwd"))


# --- the command line and the code base --------------------------------------------------

def labkit_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "labkit", "assets", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_list_fetch_verify(caches, monkeypatch):
    place_weights("mobilenet_v3_small")
    env = {**os.environ, "https_proxy": f"http://127.0.0.1:{closed_port()}"}
    listing = labkit_cli("list", env=env)
    assert listing.returncode == 0
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert sorted(rows) == sorted(REGISTRY)
    assert " present " in rows["mobilenet_v3_small"] and " missing " in rows["resnet18"]
    assert "45 MB" in rows["resnet18"]
    verify = labkit_cli("verify", env=env)
    assert verify.returncode == 1 and "BAD" in verify.stdout
    fetch = labkit_cli("fetch", "resnet18", "--timeout", "2", env=env)
    assert fetch.returncode == 1 and "FAILED   resnet18" in fetch.stderr
    unknown = labkit_cli("fetch", "resnet19", env=env)
    assert unknown.returncode == 2 and "No asset named 'resnet19'" in unknown.stderr


def test_no_code_uses_pretrained_true_or_a_moving_default_alias():
    forbidden = ["pretrained" + "=True", "_Weights." + "DEFAULT", 'weights="' + 'DEFAULT"',
                 "weights='" + "DEFAULT'"]
    # Lesson 03 teaches why the course pins weights: it prints what the alias resolves to and
    # names the old flag in prose. Its code cells must still never load weights through either.
    explains = ROOT / "notebooks" / "03_resnet.ipynb"
    offenders = []
    for folder in ("labkit", "notebooks", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".ipynb", ".md", ".yaml", ".yml", ".json") and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                if path == explains:
                    code = [c.source for c in nbformat.read(path, as_version=4).cells
                            if c.cell_type == "code"]
                    text = "\n".join(line for source in code for line in source.splitlines()
                                     if "(weights=" in line or "pretrained" in line)
                offenders += [f"{path.relative_to(ROOT)}: {word}" for word in forbidden if word in text]
    readme = (ROOT / "README.md").read_text()
    offenders += [f"README.md: {word}" for word in forbidden if word in readme]
    assert offenders == []
