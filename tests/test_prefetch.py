"""Prefetch logic against a local HTTP server (127.0.0.1, a thread, bounded by timeouts).

Checks: a download with the right sha256 lands at <root>/checkpoints/<file>; a wrong sha256 raises
ChecksumError and leaves no file (nor .part); a present file is a no-op (the server is not
contacted again); an unknown digest (null) is accepted and reported; which checkpoints a config
needs; require_checkpoint never downloads and names the file, the expected path and the command;
the committed registry lists no invented digests (each is null or 64 hex digits).
"""
from __future__ import annotations

import hashlib
import http.server
import re
import threading

import pytest
import yaml

from dipbench import prefetch as pf

PAYLOAD = b"dipbench test checkpoint\n" * 100


def _zip_bytes():
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("celeba/model.ckpt", PAYLOAD)
        z.writestr("celeba/config.yaml", "x: 1\n")
    return buf.getvalue()


ZIP = _zip_bytes()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = {"/ckpt.bin": PAYLOAD, "/a.zip": ZIP}.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.timeout = 5
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def _reg(url, sha):
    return {"toy": {"prior": "toy_prior", "file": "toy.bin", "url": url + "/ckpt.bin", "sha256": sha}}


def test_checksum_pass_then_noop(server, tmp_path):
    url, hits = server
    reg = _reg(url, hashlib.sha256(PAYLOAD).hexdigest())
    cfg = {"datasets": {"d": {"prior": {"name": "toy_prior"}}}}
    logs = []
    paths = pf.prefetch(cfg, root=tmp_path, registry=reg, timeout=10, log=logs.append)
    assert paths == [tmp_path / "checkpoints" / "toy.bin"]
    assert paths[0].read_bytes() == PAYLOAD and len(hits) == 1
    pf.prefetch(cfg, root=tmp_path, registry=reg, timeout=10, log=logs.append)
    assert len(hits) == 1 and "sha256 ok" in logs[-1]                     # no-op: no request
    assert pf.require_checkpoint("toy", root=tmp_path, registry=reg) == paths[0]


def test_checksum_fail_removes_file(server, tmp_path):
    url, _ = server
    reg = _reg(url, "0" * 64)
    with pytest.raises(pf.ChecksumError) as e:
        pf.fetch_one("toy", reg["toy"], root=tmp_path, timeout=10, log=lambda m: None)
    assert "expected " + "0" * 64 in str(e.value) and "removed" in str(e.value)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_present_with_wrong_digest_is_an_error(server, tmp_path):
    url, hits = server
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "toy.bin").write_bytes(b"corrupt")
    reg = _reg(url, hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(pf.ChecksumError, match="toy.bin is present but its sha256"):
        pf.fetch_one("toy", reg["toy"], root=tmp_path, timeout=10, log=lambda m: None)
    assert hits == []


def test_unknown_digest_accepted_and_reported(server, tmp_path):
    url, _ = server
    logs = []
    p = pf.fetch_one("toy", _reg(url, None)["toy"], root=tmp_path, timeout=10, log=logs.append)
    assert p.read_bytes() == PAYLOAD and hashlib.sha256(PAYLOAD).hexdigest() in logs[-1]
    assert "UNKNOWN" in logs[-1]


def test_archive_member_extracted(server, tmp_path):
    url, hits = server
    entry = {"file": "m.ckpt", "url": url + "/a.zip", "sha256": hashlib.sha256(ZIP).hexdigest(),
             "archive_member": "model.ckpt"}
    p = pf.fetch_one("m", entry, root=tmp_path, timeout=10, log=lambda m: None)
    assert p.read_bytes() == PAYLOAD and sorted(x.name for x in p.parent.iterdir()) == ["m.ckpt"]
    pf.fetch_one("m", entry, root=tmp_path, timeout=10, log=lambda m: None)
    assert len(hits) == 1


def test_http_error_leaves_nothing(server, tmp_path):
    url, _ = server
    entry = {"file": "x.bin", "url": url + "/missing", "sha256": None}
    with pytest.raises(OSError):
        pf.fetch_one("x", entry, root=tmp_path, timeout=10, log=lambda m: None)
    assert not (tmp_path / "checkpoints" / "x.bin").exists()
    assert not (tmp_path / "checkpoints" / "x.bin.part").exists()


def test_require_never_downloads(tmp_path):
    reg = _reg("http://127.0.0.1:9", None)
    with pytest.raises(pf.MissingCheckpoint) as e:
        pf.require_checkpoint("toy", root=tmp_path, registry=reg)
    msg = str(e.value)
    assert "toy.bin" in msg and str(tmp_path / "checkpoints" / "toy.bin") in msg
    assert "python -m dipbench.prefetch" in msg


def test_needed_and_cli(tmp_path, server):
    url, _ = server
    reg = _reg(url, hashlib.sha256(PAYLOAD).hexdigest())
    assert pf.needed({"datasets": {"a": {"prior": {"name": "gaussian_fit"}}}}, reg) == []
    assert pf.needed({"datasets": {}, "prefetch": {"checkpoints": ["toy"]}}, reg) == ["toy"]
    with pytest.raises(KeyError):
        pf.needed({"prefetch": {"checkpoints": ["nope"]}}, reg)
    regfile, cfgfile = tmp_path / "reg.yaml", tmp_path / "cfg.yaml"
    regfile.write_text(yaml.safe_dump({"checkpoints": reg}))
    cfgfile.write_text(yaml.safe_dump({"datasets": {"d": {"prior": {"name": "toy_prior"}}}}))
    rc = pf.main(["--configfile", str(cfgfile), "--registry", str(regfile), "--root", str(tmp_path / "r"),
                  "--stamp", str(tmp_path / "done")])
    assert rc == 0 and (tmp_path / "r" / "checkpoints" / "toy.bin").read_bytes() == PAYLOAD
    assert (tmp_path / "done").exists()


def test_committed_registry_has_no_invented_digests():
    import priors

    reg = pf.load_registry()
    assert {"adm_ffhq256", "adm_imagenet256", "edm_imagenet64", "ldm_celebahq256"} <= set(reg)
    assert all(e["prior"] in priors.names() for e in reg.values() if e.get("prior"))
    for name, e in reg.items():
        assert e["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", e["sha256"]), name
        assert e["url"] is None or e["url"].startswith("https://"), name


# ---------------------------------------------------------------------------- issue 17 item 5
def test_offline_says_no_network_plainly(tmp_path, monkeypatch, capsys):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    reg = {"toy": {"prior": "toy_prior", "file": "toy.pt", "url": "https://example.org/toy.pt", "sha256": None}}
    with pytest.raises(pf.NoNetwork, match="no network: cannot reach https://example.org/toy.pt"):
        pf.fetch_one("toy", reg["toy"], root=tmp_path, timeout=1, log=lambda m: None)
    regfile = tmp_path / "reg.yaml"
    regfile.write_text(yaml.safe_dump({"checkpoints": reg}))
    assert pf.main(["--only", "toy", "--registry", str(regfile), "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no network" in err and "Traceback" not in err and "URLError" not in err
    assert not list((tmp_path / "checkpoints").glob("*"))


def _torch_bytes():
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.arange(20000, dtype=torch.float32)}, buf)
    return buf.getvalue()


def test_unknown_digest_refuses_a_truncated_checkpoint(tmp_path, monkeypatch):
    import io
    import pickle
    import urllib.request

    good = _torch_bytes()

    class Resp(io.BytesIO):
        def __init__(self, body, length):
            super().__init__(body)
            self.headers = {"Content-Length": str(length)}

    bodies = {}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Resp(*bodies[url]))
    entry = lambda f: {"file": f, "url": "http://x/" + f, "sha256": None}  # noqa: E731
    # whole file: accepted (it loads)
    bodies["http://x/a.pt"] = (good, len(good))
    assert pf.fetch_one("a", entry("a.pt"), root=tmp_path, log=lambda m: None).read_bytes() == good
    # the server announced more than it sent: refused, nothing written
    bodies["http://x/b.pt"] = (good[: len(good) // 2], len(good))
    with pytest.raises(pf.ChecksumError, match="truncated"):
        pf.fetch_one("b", entry("b.pt"), root=tmp_path, log=lambda m: None)
    # no Content-Length to compare with: the archive check refuses it
    bodies["http://x/c.pt"] = (good[:-100], len(good) - 100)
    with pytest.raises(pf.ChecksumError, match="does not load as a checkpoint"):
        pf.fetch_one("c", entry("c.pt"), root=tmp_path, log=lambda m: None)
    # a truncated pickle
    pk = pickle.dumps({"ema": list(range(5000))})
    bodies["http://x/d.pkl"] = (pk[:-50], len(pk) - 50)
    with pytest.raises(pf.ChecksumError, match="does not load"):
        pf.fetch_one("d", entry("d.pkl"), root=tmp_path, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["a.pt"]
    # a truncated file already in place (sha256 unknown) is refused too, and a wrong published size
    (tmp_path / "checkpoints" / "e.pt").write_bytes(good[: len(good) // 3])
    with pytest.raises(pf.ChecksumError, match="e.pt"):
        pf.fetch_one("e", entry("e.pt"), root=tmp_path, log=lambda m: None)
    with pytest.raises(pf.ChecksumError, match="published size"):
        pf.fetch_one("a", dict(entry("a.pt"), size=len(good) + 1), root=tmp_path, log=lambda m: None)
