#!/usr/bin/python3
"""A loopback Hugging Face Hub for the tests (standard library only).

Serves one model repository made from a local folder with the Hub's protocol:
  GET  /api/models/ORG/NAME/revision/REV         listing: sha (commit), siblings
  GET  /api/models/ORG/NAME/tree/REV?recursive=  files and folders (@huggingface/hub)
  POST /api/models/ORG/NAME/paths-info/REV       oid, size, lfs per path (@huggingface/hub)
  HEAD/GET /ORG/NAME/resolve/REV/PATH            X-Repo-Commit, ETag; small files
       directly (Range supported), large (LFS: *.safetensors, *.bin) files by a 302 to
       an ABSOLUTE URL on a second port, the "CDN", with X-Linked-Etag (sha256) and
       X-Linked-Size
  GET  /cdn/SHA256?sig=...                       (second port) the bytes, Range supported

REV is "main" or the commit. A small file's ETag is its git blob sha1. --fault picks
one misbehaviour (see FAULTS). Every request is logged as one JSON line in --log.
Writes the hub's port to --port-file (atomically), then serves until SIGTERM.
"""
import argparse, hashlib, json, os, signal, socket, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {
    "none": "behave",
    "drop": "the CDN closes the connection halfway through the first download of each LFS file",
    "norange": "the CDN ignores Range and always answers 200 with the whole file",
    "corrupt": "the CDN serves the LFS files with one byte flipped",
    "auth": "the hub answers 401 unless 'Authorization: Bearer <--token>'",
    "flaky": "the first request of each path gets 500, the listing's second gets 429 + Retry-After: 1",
    "stall": "the CDN sends the headers and 1000 bytes, then nothing",
    "nosafetensors": "the repository has pytorch_model.bin instead of model.safetensors",
    "hostile": "the listing also names ../../escape.json",
    "hostile-abs": "the listing also names /tmp/escape.json",
    "slow": "the CDN sends 64 kB every 20 ms",
    "renamed": "the repository also answers as ORG/old-name: its listing, and a relative 307 from its resolve URLs",
}


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, folder, fault):
        self.files = {}
        for root, _, names in os.walk(folder):
            for n in names:
                full = os.path.join(root, n)
                rel = os.path.relpath(full, folder)
                with open(full, "rb") as f:
                    self.files[rel] = f.read()
        if fault == "nosafetensors" and "model.safetensors" in self.files:
            self.files["pytorch_model.bin"] = self.files.pop("model.safetensors")
        self.lfs = {p for p in self.files if p.endswith((".safetensors", ".bin"))}
        self.sha256 = {p: hashlib.sha256(d).hexdigest() for p, d in self.files.items()}
        self.gitsha = {p: git_sha1(d) for p, d in self.files.items()}
        h = hashlib.sha1()
        for p in sorted(self.files):
            h.update(("%s %s\n" % (p, self.gitsha[p])).encode())
        self.commit = h.hexdigest()
        self.by_sha256 = {self.sha256[p]: p for p in self.lfs}

    def etag(self, p):
        return self.sha256[p] if p in self.lfs else self.gitsha[p]

    def entry(self, p, expand=False):
        e = {"type": "file", "oid": self.gitsha[p], "size": len(self.files[p]), "path": p}
        if p in self.lfs:
            e["lfs"] = {"oid": self.sha256[p], "size": len(self.files[p]), "pointerSize": 134}
        if expand:
            e["lastCommit"] = {"id": self.commit, "title": "upload", "date": "2024-01-01T00:00:00.000Z"}
        return e


class State:
    def __init__(self, args):
        self.args = args
        self.repo = Repo(args.model, args.fault)
        self.lock = threading.Lock()
        self.hits = {}
        self.cdn_port = 0
        self.log = open(args.log, "a") if args.log else None

    def hit(self, key):
        with self.lock:
            self.hits[key] = self.hits.get(key, 0) + 1
            return self.hits[key]

    def record(self, **kw):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(kw) + "\n")
                self.log.flush()


def parse_range(h, size):
    """(start, end) inclusive of 'bytes=a-' / 'bytes=a-b', or None; 'bad' when unsatisfiable."""
    if not h or not h.startswith("bytes="):
        return None
    a, _, b = h[6:].partition("-")
    try:
        start = int(a)
        end = int(b) if b else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        return "bad"
    return start, min(end, size - 1)


def make_handler(st):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, code, body=b"", headers=None, ctype="application/json"):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def error(self, code, msg, headers=None):
            h = {"X-Error-Message": msg}
            h.update(headers or {})
            self.send(code, json.dumps({"error": msg}).encode(), h)

        def body_range(self, data, extra, no_range=False):
            rng = None if no_range else parse_range(self.headers.get("Range"), len(data))
            if rng == "bad":
                return self.send(416, b"", dict(extra, **{"Content-Range": "bytes */%d" % len(data)}))
            if rng is None:
                return self.send(200, data, dict(extra, **{"Accept-Ranges": "bytes"}), "application/octet-stream")
            a, b = rng
            return self.send(206, data[a:b + 1], dict(extra, **{"Content-Range": "bytes %d-%d/%d" % (a, b, len(data))}),
                             "application/octet-stream")

        def do_HEAD(self):
            self.route()

        def do_GET(self):
            self.route()

        def do_POST(self):
            self.route()

        def route(self):
            u = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(u.path)
            cdn = self.server.server_address[1] == st.cdn_port
            auth = self.headers.get("Authorization")
            st.record(method=self.command, path=path, cdn=cdn, range=self.headers.get("Range"), auth=bool(auth))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if cdn:
                return self.cdn(path, auth)
            f = st.args.fault
            if f == "auth" and auth != "Bearer " + st.args.token:
                return self.error(401, "Invalid credentials in Authorization header", {"X-Error-Code": "GatedRepo"})
            if f == "flaky":
                n = st.hit(self.command + path)
                if n == 1:
                    return self.error(500, "internal error (fault)")
                if n == 2 and "/revision/" in path:
                    return self.error(429, "slow down (fault)", {"Retry-After": "1"})
            repo, r = st.args.repo, st.repo
            if f == "renamed":
                old = repo.split("/")[0] + "/old-name"
                if path.startswith("/api/models/%s/" % old):
                    path = path.replace(old, repo, 1)
                elif path.startswith("/%s/resolve/" % old):
                    return self.send(307, b"", {"Location": path.replace(old, repo, 1)})
            api = "/api/models/%s/" % repo
            if path.startswith(api):
                kind, _, rest = path[len(api):].partition("/")
                rev = rest
                if rev not in ("main", r.commit):
                    return self.error(404, "Revision Not Found", {"X-Error-Code": "RevisionNotFound"})
                if kind == "revision":
                    sib = [{"rfilename": p} for p in sorted(r.files)]
                    if f == "hostile":
                        sib.append({"rfilename": "../../escape.json"})
                    if f == "hostile-abs":
                        sib.append({"rfilename": "/tmp/escape.json"})
                    info = {"_id": "0123", "id": repo, "modelId": repo, "sha": r.commit, "private": False,
                            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                            "pipeline_tag": "sentence-similarity", "library_name": "sentence-transformers",
                            "lastModified": "2024-01-01T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
                            "siblings": sib}
                    return self.send(200, json.dumps(info).encode())
                if kind == "tree":
                    dirs = sorted({os.path.dirname(p) for p in r.files if "/" in p})
                    out = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in dirs]
                    out += [r.entry(p) for p in sorted(r.files)]
                    return self.send(200, json.dumps(out).encode())
                if kind == "paths-info" and self.command == "POST":
                    req = json.loads(body or b"{}")
                    out = [r.entry(p, bool(req.get("expand"))) for p in req.get("paths", []) if p in r.files]
                    return self.send(200, json.dumps(out).encode())
                return self.error(404, "no such API")
            pre = "/%s/resolve/" % repo
            if not path.startswith(pre):
                return self.error(404, "Repository Not Found", {"X-Error-Code": "RepoNotFound"})
            rev, _, file = path[len(pre):].partition("/")
            if rev not in ("main", r.commit):
                return self.error(404, "Revision Not Found", {"X-Error-Code": "RevisionNotFound"})
            if file not in r.files:
                return self.error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
            data = r.files[file]
            h = {"X-Repo-Commit": r.commit, "ETag": '"%s"' % r.gitsha[file]}
            if file in r.lfs:
                h.update({"X-Linked-Etag": '"%s"' % r.sha256[file], "X-Linked-Size": str(len(data)),
                          "Location": "http://127.0.0.1:%d/cdn/%s?sig=SECRETSIGNATURE" % (st.cdn_port, r.sha256[file])})
                return self.send(302, b"", h)
            return self.body_range(data, h)

        def cdn(self, path, auth):
            if auth:
                st.record(leak=True)
                return self.error(400, "Authorization sent to the CDN")
            r, f = st.repo, st.args.fault
            sha = path[len("/cdn/"):]
            if not path.startswith("/cdn/") or sha not in r.by_sha256:
                return self.error(404, "no such object")
            data = r.files[r.by_sha256[sha]]
            if f == "corrupt":
                data = bytearray(data)
                data[len(data) // 2] ^= 0x40
                data = bytes(data)
            if self.command == "GET" and f == "drop" and st.hit("drop" + sha) == 1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if self.command == "GET" and f == "stall":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:1000])
                self.wfile.flush()
                time.sleep(30)
                self.close_connection = True
                return
            if self.command == "GET" and f == "slow":
                rng = parse_range(self.headers.get("Range"), len(data))
                a = rng[0] if isinstance(rng, tuple) else 0
                self.send_response(206 if a else 200)
                self.send_header("Content-Length", str(len(data) - a))
                if a:
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (a, len(data) - 1, len(data)))
                self.end_headers()
                for i in range(a, len(data), 65536):
                    self.wfile.write(data[i:i + 65536])
                    self.wfile.flush()
                    time.sleep(0.02)
                return
            return self.body_range(data, {"ETag": '"%s"' % sha}, no_range=(f == "norange"))

    return H


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder whose files the repository holds")
    ap.add_argument("--repo", default="test-org/tiny-model")
    ap.add_argument("--fault", default="none", choices=sorted(FAULTS))
    ap.add_argument("--token", default="")
    ap.add_argument("--log", default="")
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    st = State(args)
    hub = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(st))
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(st))
    hub.daemon_threads = cdn.daemon_threads = True
    st.cdn_port = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % hub.server_address[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    hub.serve_forever()


if __name__ == "__main__":
    main()
