"""Importing mtlscene and building its CLI must not touch the network."""

import json
import os
import subprocess
import sys

GUARD = r"""
import json, socket, time
attempts = []
_getaddrinfo, _connect = socket.getaddrinfo, socket.socket.connect

def getaddrinfo(host, *args, **kwargs):
    if host not in ("localhost", "127.0.0.1", "::1", None):
        attempts.append(f"lookup {host}")
        raise OSError("network disabled by test")
    return _getaddrinfo(host, *args, **kwargs)

def connect(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        attempts.append(f"connect {address}")
        raise OSError("network disabled by test")
    return _connect(self, address)

socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
import mtlscene.cli.main
from mtlscene.data.cityscapes.transforms import JointAugmentation
from mtlscene.cli.main import build_cli
JointAugmentation((8, 8))
time.sleep(1.0)  # give background update checks a chance to fire
print("ATTEMPTS=" + json.dumps(attempts))
"""


def test_import_makes_no_network_calls():
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run(
        [sys.executable, "-c", GUARD], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(row for row in result.stdout.splitlines() if row.startswith("ATTEMPTS="))
    assert json.loads(line.removeprefix("ATTEMPTS=")) == []
