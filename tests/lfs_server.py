"""A real Git LFS server on 127.0.0.1 for tests and benchmarks: giftless with local storage.

It requires HTTP basic auth (user `theta`, password `s3cret`), so clients go through
`git credential`, and counts the object bytes it receives and sends (GET /_stats).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

USER, PASSWORD = "theta", "s3cret"

APP = textwrap.dedent('''
    """WSGI app: giftless plus byte counters and basic-auth identities (test helper)."""
    import json
    import threading

    from giftless.auth.identity import DefaultIdentity, Permission
    from giftless.wsgi_entrypoint import init_app

    STATS = {"uploaded": 0, "downloaded": 0, "batch_requests": 0}
    LOCK = threading.Lock()


    def auth(request):
        creds = request.authorization
        if not creds or (creds.username, creds.password) != (__CREDENTIALS__):
            return None
        identity = DefaultIdentity(name=creds.username)
        args = request.view_args or {}
        identity.allow(organization=args.get("organization"), repo=args.get("repo"), permissions=Permission.all())
        return identity


    def create_app():
        inner = init_app()

        def app(environ, start_response):
            path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
            if path == "/_stats":
                body = json.dumps(STATS).encode()
                start_response("200 OK", [("Content-Type", "application/json")])
                return [body]
            if path.endswith("/objects/batch"):
                with LOCK:
                    STATS["batch_requests"] += 1
            if "/objects/storage/" in path and method == "PUT":
                with LOCK:
                    STATS["uploaded"] += int(environ.get("CONTENT_LENGTH") or 0)
            result = inner(environ, start_response)
            if "/objects/storage/" in path and method == "GET":
                def counted(chunks):
                    for chunk in chunks:
                        with LOCK:
                            STATS["downloaded"] += len(chunk)
                        yield chunk
                return counted(result)
            return result

        return app
    ''').replace("__CREDENTIALS__", f"{USER!r}, {PASSWORD!r}")

CONFIG = """
TRANSFER_ADAPTERS:
  basic:
    factory: giftless.transfer.basic_streaming:factory
    options:
      storage_class: giftless.storage.local_storage:LocalStorage
      storage_options:
        path: {storage}
AUTH_PROVIDERS:
  - theta_lfs_app:auth
PRE_AUTHORIZED_ACTION_PROVIDER: null
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LfsServer:
    """Start with `start()`, stop with `stop()`; `url(org, repo)` is what lfs.url takes."""

    def __init__(self, root: str | None = None):
        self.root = root or tempfile.mkdtemp(prefix="theta-lfs-server-")
        self.storage = os.path.join(self.root, "storage")
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, org: str = "team", repo: str = "models") -> str:
        return f"http://127.0.0.1:{self.port}/{org}/{repo}"

    def start(self) -> "LfsServer":
        os.makedirs(self.storage, exist_ok=True)
        with open(os.path.join(self.root, "theta_lfs_app.py"), "w") as f:
            f.write(APP)
        config = os.path.join(self.root, "giftless.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(storage=self.storage))
        env = dict(os.environ, GIFTLESS_CONFIG_FILE=config, PYTHONPATH=self.root)
        waitress = os.path.join(os.path.dirname(sys.executable), "waitress-serve")
        self.proc = subprocess.Popen(
            [
                waitress,
                f"--listen=127.0.0.1:{self.port}",
                "--threads=8",
                "--call",
                "theta_lfs_app:create_app",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "server.log"), "wb"),
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.stats()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(open(os.path.join(self.root, "server.log")).read()) from None
                time.sleep(0.1)
        raise RuntimeError("LFS server did not start")

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats", timeout=5) as r:
            return json.loads(r.read())

    def objects(self) -> dict[str, int]:
        """oid -> size of every object the server stores."""
        found = {}
        for d, _, files in os.walk(self.storage):
            for f in files:
                if len(f) == 64:
                    found[f] = os.path.getsize(os.path.join(d, f))
        return found

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def credential_helper() -> str:
    """A git credential helper that answers from memory (nothing written to disk)."""
    return f'!f() {{ test "$1" = get && echo username={USER} && echo password={PASSWORD}; }}; f'
