"""glibc's thresholds (assets/common/memory.py): a streaming step returns freed blocks to the system,
and once it ends, compute reuses them instead of taking a page fault per 4 KB again.

In a fresh interpreter: the thresholds are process-wide and cannot be read back, so the test counts
what they cause, the minor page faults of allocating and freeing 3 MB blocks (under the 4 MB at
which numpy asks for huge pages)."""

import subprocess
import sys
import textwrap

import pytest

CHURN = textwrap.dedent("""
    import resource
    import numpy as np
    from assets.common.memory import returning_freed_memory

    def churn():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(40):
            block = np.ones(3 << 20, dtype=np.uint8)  # touched: every page is faulted in once
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    np.ones(1, dtype=np.uint8)  # numpy's own first-use allocations
    with returning_freed_memory() as tuned:  # first: the heap has no free 3 MB block to serve them from
        with returning_freed_memory():  # a streaming helper inside a streaming step
            pass
        streaming = churn()  # still streaming: the inner block's end did not restore
    print(tuned, streaming, churn())
""")


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_go_back_while_streaming_and_are_reused_after() -> None:
    out = subprocess.run([sys.executable, "-c", CHURN], capture_output=True, text=True, check=True).stdout.split()
    tuned, streaming, compute = out[0] == "True", int(out[1]), int(out[2])
    assert tuned
    pages = 40 * (3 << 20) // 4096
    assert streaming >= pages * 0.9  # every block came fresh from mmap and went back on free
    assert compute < pages * 0.1  # the same blocks, kept and reused: the streaming setting did not outlive its step
