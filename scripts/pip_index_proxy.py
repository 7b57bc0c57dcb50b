"""This machine's pip indexes on loopback, for a ``docker build --network host`` (scripts/docker-e2e.sh).

``python pip_index_proxy.py PORT URL...`` serves each URL (an index, an extra index or a find-links
location, as ``pip config list`` names them) under http://127.0.0.1:PORT and prints, one per line, the
loopback URL that stands for it, in the same order:

* ``https://host/path`` is fetched from the host with this machine's certificates (``PIP_CERT``, else
  the system's store: a TLS-inspecting proxy's CA is trusted here and nowhere else) and served as
  ``/abs/host/path``; absolute https URLs in its pages (the files of PyPI's pages) are rewritten the
  same way, so the files come through here too;
* ``file:///dir`` or ``/dir`` is served from the disk as ``/file/dir`` (a folder as a page of links, the
  way pip reads a find-links folder), with its parent folder, where a static index keeps its files.

A build's pip then resolves with its own Python and platform (its markers, its wheels), from the
packages this machine's pip would see. Only GET, only the locations named, only loopback.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import ssl
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ABSOLUTE = re.compile(rb"https://([A-Za-z0-9.-]+)/")


def context() -> ssl.SSLContext:
    cafile = os.environ.get("PIP_CERT")
    return ssl.create_default_context(cafile=cafile if cafile and os.path.exists(cafile) else None)


class Handler(BaseHTTPRequestHandler):
    roots: tuple[Path, ...] = ()
    base = ""
    tls = ssl.create_default_context()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("%s\n" % (format % args))

    def do_GET(self) -> None:
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        if path.startswith("/abs/"):
            self.relay("https://" + self.path[len("/abs/") :])
        elif path.startswith("/file/"):
            self.disk(Path("/" + path[len("/file/") :]))
        else:
            self.send_error(404)

    def relay(self, url: str) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "user-agent")}
        try:
            request = urllib.request.Request(url, headers=headers)
            upstream = urllib.request.urlopen(request, context=self.tls, timeout=120)
        except urllib.error.HTTPError as exc:
            self.send_error(exc.code)
            return
        except OSError as exc:
            self.send_error(502, str(exc))
            return
        with upstream:
            kind = upstream.headers.get("Content-Type", "application/octet-stream")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            if kind.startswith(("text/", "application/vnd.pypi", "application/json")):
                body = ABSOLUTE.sub(lambda m: f"{self.base}/abs/{m.group(1).decode()}/".encode(), upstream.read())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                if upstream.headers.get("Content-Length"):
                    self.send_header("Content-Length", upstream.headers["Content-Length"])
                self.end_headers()
                shutil.copyfileobj(upstream, self.wfile, 1 << 20)

    def disk(self, path: Path) -> None:
        real = Path(os.path.realpath(path))
        if not any(real == root or root in real.parents for root in self.roots):
            self.send_error(403)
            return
        if real.is_dir():
            index = real / "index.html"
            if index.is_file():
                real = index
            else:
                names = sorted(p.name + ("/" if p.is_dir() else "") for p in real.iterdir())
                links = "".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>\n' for n in names)
                body = f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        if not real.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if real.suffix == ".html" else "application/octet-stream")
        self.send_header("Content-Length", str(real.stat().st_size))
        self.end_headers()
        with open(real, "rb") as fh:
            shutil.copyfileobj(fh, self.wfile, 1 << 20)


def loopback_url(location: str, base: str) -> tuple[str, Path | None]:
    """The loopback URL standing for ``location``, and the folder it lets out (None for a remote one)."""
    if location.startswith("https://"):
        return f"{base}/abs/{location[len('https://') :]}", None
    path = Path(urllib.parse.unquote(location[len("file://") :]) if location.startswith("file://") else location)
    real = Path(os.path.realpath(path))
    url = f"{base}/file{real}" + ("/" if real.is_dir() else "")
    return url, real.parent if real.is_dir() else real


def main(argv: list[str]) -> int:
    port, locations = int(argv[1]), argv[2:]
    base = f"http://127.0.0.1:{port}"
    roots = []
    for location in locations:
        url, root = loopback_url(location, base)
        if root is not None:
            roots.append(root)
        print(url, flush=True)
    Handler.roots, Handler.base, Handler.tls = tuple(roots), base, context()
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
