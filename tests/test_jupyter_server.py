"""A Jupyter server on loopback lists the notebooks and runs notebook code in a kernel."""

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
TOKEN = uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def jupyter_server(tmp_path):
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter", "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={TOKEN}",
        f"--ServerApp.root_dir={ROOT}", "--allow-root",  # CI runs as root
    ]
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                if requests.get(f"{base}/api/status", params={"token": TOKEN}, timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail(f"Jupyter server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def execute(base: str, kernel_id: str, code: str, timeout: float = 120.0) -> list[dict]:
    """Send ``code`` to the kernel over its websocket; return the messages until the reply."""
    url = base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels?token={TOKEN}"
    connection = websocket.create_connection(url, timeout=timeout)
    msg_id = uuid.uuid4().hex
    connection.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False},
    }))
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(connection.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "execute_reply":
            break
    connection.close()
    return messages


def test_jupyter_server_lists_and_executes(jupyter_server):
    headers = {"Authorization": f"token {TOKEN}"}
    listing = requests.get(f"{jupyter_server}/api/contents/notebooks", headers=headers, timeout=10).json()
    names = {item["name"] for item in listing["content"]}
    assert {"avmnist_train.ipynb", "avmnist_summary.ipynb"} <= names

    notebook = requests.get(f"{jupyter_server}/api/contents/notebooks/avmnist_train.ipynb", headers=headers,
                            timeout=10).json()
    import_cell = next(c for c in notebook["content"]["cells"] if "import run_avmnist" in c["source"])

    session = requests.post(
        f"{jupyter_server}/api/sessions", headers=headers, timeout=60,
        json={"path": "notebooks/avmnist_train.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    ).json()
    kernel_id = session["kernel"]["id"]
    messages = execute(jupyter_server, kernel_id, import_cell["source"] + "\nprint(run_avmnist.__name__)")
    reply = messages[-1]
    assert reply["msg_type"] == "execute_reply"
    assert reply["content"]["status"] == "ok", reply["content"]
    printed = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert "run_avmnist" in printed
    requests.delete(f"{jupyter_server}/api/sessions/{session['id']}", headers=headers, timeout=10)
