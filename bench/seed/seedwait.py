"""The seed's way of learning that a worker died, for bench's detection table.

The seed supervisor polled each worker's multiprocessing sentinel with
multiprocessing.connection.wait and a 2 ms timeout. A sentinel is the read end
of a pipe whose write end only the child holds: it reads as ready when the
child's files are closed, in do_exit's exit_files(), after exit_mm() has torn
the address space down. This script drives the same child binary the Go
benchmarks kill (argv[1], footprint argv[2] MiB), kills it argv[3] times and
prints one kill-to-detection latency in ns per line.

It runs at the priority it is started with (the Go benchmark starts it as the
floor's waiter runs, SCHED_FIFO 80, with the child at 60), and sweeps 64 MiB
before each kill, as the Go benchmark does, so that every footprint starts
from the same cold caches.
"""
import ctypes
import os
import signal
import sys
import time
from multiprocessing.connection import wait


def state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            line = f.read()
    except OSError:
        return b""
    return line[line.rindex(b")") + 2:][:1]


def main():
    child, mib, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fifo = os.sched_getscheduler(0) == os.SCHED_FIFO
    sweep = ctypes.create_string_buffer(64 << 20) if int(mib) > 0 else None
    for _ in range(n):
        r, w = os.pipe()
        pid = os.posix_spawn(child, [child, mib], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 4)])
        os.close(w)
        if fifo:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(60))
        for _ in range(20000):  # asleep in pause(), as an idle worker is
            if state(pid) == b"S":
                break
            time.sleep(0.0001)
        if sweep is not None:
            ctypes.memset(sweep, len(sweep) & 0xFF, len(sweep))
        time.sleep(0.001)
        t0 = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        for _ in range(5000):  # bounded: 10 s of 2 ms timeouts
            if wait([r], timeout=0.002):
                break
        t1 = time.monotonic_ns()
        os.close(r)
        os.waitpid(pid, 0)
        print(t1 - t0, flush=True)


if __name__ == "__main__":
    main()
