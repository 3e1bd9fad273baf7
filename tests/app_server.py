"""What the app tests share: the app (``dynamictrl/cli/app.py``) loaded as a module, and a free local port for its server."""

import importlib.util
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_app(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "dynamictrl" / "cli" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
