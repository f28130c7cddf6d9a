"""Generated request ids come from the random module: unique per request and per forked worker."""

from __future__ import annotations

import os
import re

from app.observability.request_id import begin_request_id, current_request_id, end_request_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_an_id_lives_from_begin_to_end():
    rid = begin_request_id("")
    assert HEX32.fullmatch(rid) and current_request_id() == rid
    end_request_id()
    assert current_request_id() is None


def test_a_forked_worker_does_not_repeat_its_parents_ids():
    """gunicorn forks its workers from one master: each must draw its own ids."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then straight out
        os.write(write, "".join(begin_request_id("") for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 96).decode()
    os.close(read)
    parent = "".join(begin_request_id("") for _ in range(3))
    end_request_id()
    assert len(child) == 96 and child != parent
