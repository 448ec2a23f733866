#!/usr/bin/env python3
"""CPU per exec of `procwatch agent` and `procwatch events --json`, for several builds
alternated in one run (as root; needs gcc with static libc).

usage: scripts/cpu-per-exec.py ROUNDS N LABEL=BINARY...

Each round starts each build's agent (fresh database) and `events --json` in turn, runs an
exec storm of N execs of a static no-op from 2 workers (../shared/bench/execstorm.c and
nop.c, or $PROCWATCH_BENCH_DIR), and charges the monitor the scheduler's exact on-CPU time
of all its threads (/proc/PID/task/*/schedstat) from the storm's start to 1.5 s after its
end, divided by N. schedstat is exact where the kernel's tick-based utime/stime are not,
and it measures only the monitor, so the figure holds on a busy machine better than a
throughput ratio does. It prints each run and the median per build and command.
"""
import glob, os, shutil, statistics, subprocess, sys, time

def sched_ns(pid):
    total = 0
    for f in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            total += int(open(f).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, n = int(sys.argv[1]), int(sys.argv[2])
    builds = [a.split("=", 1) if "=" in a else (a, a) for a in sys.argv[3:]]
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.environ.get("PROCWATCH_BENCH_DIR", os.path.join(here, "..", "..", "shared", "bench"))
    work = "/var/tmp/pw-cpu-per-exec"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chmod(work, 0o755)
    storm, nop = os.path.join(work, "execstorm"), os.path.join(work, "pwbench-nop")
    subprocess.run(["gcc", "-O2", "-o", storm, os.path.join(src, "execstorm.c")], check=True)
    subprocess.run(["gcc", "-O2", "-static", "-include", "stdlib.h", "-o", nop, os.path.join(src, "nop.c")], check=True)
    res = {}
    for r in range(rounds):
        for label, binary in builds:
            for mode in ("agent", "events --json"):
                for f in glob.glob(os.path.join(work, "a.*")):
                    os.remove(f)
                if mode == "agent":
                    cmd = [binary, "agent", "--db", work + "/a.db", "--socket", work + "/a.sock"]
                else:
                    cmd = [binary, "events", "--json"]
                out = open(os.path.join(work, "out"), "w")
                p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
                time.sleep(3)
                for _ in range(20):  # the first execs: binaries hashed, caches warm
                    subprocess.run([nop])
                time.sleep(1)
                c0 = sched_ns(p.pid)
                rate = subprocess.run([storm, str(n), "2", nop], capture_output=True, text=True).stdout
                time.sleep(1.5)
                us = (sched_ns(p.pid) - c0) / n / 1000
                p.terminate()
                p.wait()
                res.setdefault((label, mode), []).append(us)
                print("round %d %s %s: %.2f us/exec (%s)" % (r + 1, label, mode, us, rate.strip()), flush=True)
    for (label, mode), v in res.items():
        print("%-12s %-14s median %.2f us/exec  (%s)" % (label, mode, statistics.median(v), ", ".join("%.2f" % x for x in v)))
    shutil.rmtree(work)

if __name__ == "__main__":
    main()
