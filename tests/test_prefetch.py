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
