import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')        # nothing downloads at run time, tests included
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import socket
import pytest

@pytest.fixture
def no_network(monkeypatch):
    "Any attempt to open a connection fails the test; a module opts in with `pytestmark = pytest.mark.usefixtures('no_network')`."
    def refuse(*args, **kwargs): raise AssertionError(f'tried to open a network connection: {args}')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
