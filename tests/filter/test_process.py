"""git-theta-filter speaks git's long-running filter protocol and the per-file commands."""

import io
import subprocess

import torch

from git_theta.git import pktline
from git_theta.metadata import is_metadata
from tests.helpers import assert_same_state, small_model


def checkpoint_bytes(sd) -> bytes:
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def request(proc, command, path, content: bytes):
    w, r = proc.stdin, proc.stdout
    pktline.write_text(w, f"command={command}", f"pathname={path}")
    pktline.write_flush(w)
    sink = pktline.ContentWriter(w)
    sink.write(content)
    sink.close()
    w.flush()
    status = pktline.read_key_values(r)
    if status.get("status") != "success":
        return status["status"], b""
    body = bytes(pktline.read_content(r))
    final = pktline.read_key_values(r)
    return final.get("status", "success"), body


def test_process_protocol_clean_smudge_and_errors(repo):
    repo.theta("track", "model.pt")
    proc = subprocess.Popen(
        ["git-theta-filter", "process"],
        cwd=repo.cwd,
        env=repo.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    w = proc.stdin
    greeting, caps = pktline.client_handshake(w, proc.stdout, ("clean", "smudge", "delay"))
    assert greeting == ["git-filter-server", "version=2"]
    assert caps == {"clean", "smudge"}

    sd = small_model()
    status, meta = request(proc, "clean", "model.pt", checkpoint_bytes(sd))
    assert status == "success" and is_metadata(meta)
    status, garbage = request(proc, "clean", "model.pt", b"PK\x03\x04 not really a zip")
    assert status == "error" and garbage == b""
    status, model = request(proc, "smudge", "model.pt", meta)  # the process survived the error
    assert status == "success"
    assert_same_state(torch.load(io.BytesIO(model), weights_only=True), sd)
    w.close()
    assert proc.wait(timeout=30) == 0
    assert b"git-theta: model.pt: " in proc.stderr.read()


def filter_cmd(repo, command: str, path: str, data: bytes) -> subprocess.CompletedProcess:
    """`git-theta-filter COMMAND PATH` in the repository, `data` on stdin."""
    return subprocess.run(
        ["git-theta-filter", command, path], cwd=repo.cwd, env=repo.env, input=data, capture_output=True
    )


def test_per_file_commands_on_stdin_stdout(repo):
    repo.theta("track", "model.pt")
    sd = small_model(3)
    data = checkpoint_bytes(sd)
    clean = filter_cmd(repo, "clean", "model.pt", data)
    assert clean.returncode == 0 and is_metadata(clean.stdout)
    smudge = filter_cmd(repo, "smudge", "model.pt", clean.stdout)
    assert smudge.returncode == 0
    assert_same_state(torch.load(io.BytesIO(smudge.stdout), weights_only=True), sd)
    # content that is not metadata passes through smudge untouched
    plain = filter_cmd(repo, "smudge", "x", b"abc")
    assert plain.stdout == b"abc"
    bad = filter_cmd(repo, "clean", "model.pt", data[:100])
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.decode().count("\n") == 1 and "model.pt" in bad.stderr.decode()


def test_pktline_framing_splits_large_content():
    out = io.BytesIO()
    sink = pktline.ContentWriter(out)
    payload = bytes(range(256)) * 1000
    sink.write(payload[:10])
    sink.write(memoryview(payload)[10:])
    sink.close()
    out.seek(0)
    assert bytes(pktline.read_content(out)) == payload


def test_clean_stores_what_git_streams_not_the_file_at_the_path(repo):
    """The filter reads the work tree's file instead of a copy only when the stream is that file:
    content from elsewhere (here `git hash-object --stdin`) is stored as streamed."""
    repo.theta("track", "model.pt")
    on_disk, streamed = small_model(1), small_model(2)
    torch.save(on_disk, f"{repo.cwd}/model.pt")
    for sd in (streamed, on_disk):  # another checkpoint, then the file itself
        blob = subprocess.run(
            ["git", "hash-object", "-w", "--path=model.pt", "--stdin"],
            cwd=repo.cwd,
            env=repo.env,
            input=checkpoint_bytes(sd),
            capture_output=True,
            check=True,
        ).stdout.strip()
        meta = subprocess.run(
            ["git", "cat-file", "blob", blob], cwd=repo.cwd, env=repo.env, capture_output=True
        )
        assert is_metadata(meta.stdout)
        smudge = filter_cmd(repo, "smudge", "model.pt", meta.stdout)
        assert_same_state(torch.load(io.BytesIO(smudge.stdout), weights_only=True), sd)
