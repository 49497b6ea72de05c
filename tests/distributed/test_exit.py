"""``exit_worker``: a finished torchrun worker leaves with the given code, after flushing what
it printed and destroying its process group."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from ._harness import free_port


def test_exit_worker_flushes_destroys_the_group_and_keeps_the_code():
    code = textwrap.dedent(f"""
        import os, sys, atexit
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="{free_port()}", RANK="0",
                          LOCAL_RANK="0", WORLD_SIZE="1")
        import torch.distributed as dist
        from mtlkit.training import distributed as d
        dist.init_process_group("gloo")
        atexit.register(lambda: print("atexit ran"))  # skipped: no interpreter teardown
        real = dist.destroy_process_group
        def spy(*a, **k):
            sys.stdout.write("destroyed;")
            return real(*a, **k)
        dist.destroy_process_group = spy
        sys.stdout.write("unflushed;")
        d.exit_worker(3)
        print("not reached")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stderr
    assert res.stdout == "unflushed;destroyed;"
