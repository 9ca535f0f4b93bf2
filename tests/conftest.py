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

def reduced_demo(root):
    "The run folder of a real, reduced `cvkit demo` (one tiny backbone, one seed, two epochs) made under `root`."
    from cvkit.cli import main as cvkit_main
    from cvkit.lab.store import SweepDir
    rc = cvkit_main(['demo', '--backbones', 'cvkit_cnn_tiny', '--seeds', '0', '--epochs', '2', '--workers', '1', '--no-progress',
                     '--root', str(root), '--name', 'd'])
    assert rc == 0
    (run,) = SweepDir(root/'d').runs()
    assert run.status()['status'] == 'completed'
    return run
