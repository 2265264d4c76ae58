"""The kill families of the fault campaign (fault_campaign.sh runs this).

  kill_trials.py random   SPEC.json   SIGKILL of a random rank at a random time
  kill_trials.py in-write SPEC.json   SIGKILL of rank 0 inside a checkpoint write

SPEC holds: mpirun (the launcher prefix, a list), mpitrain, mpitrain_solo
(the command that runs mpitrain as one process, a list), np, train (the
training options, a list), job_extra (options of the killed and reference
runs only, e.g. the checkpoint cadence), resume_extra (of the resumes;
default job_extra), max_write (in-write: kill in one of the first N writes),
work (a directory), trials, seed, results (a TSV file to append to). Every trial runs the job, kills one rank, measures the
seconds from the kill to the launcher's exit, then resumes (--resume; from
scratch if no checkpoint was written yet) and compares the final state_crc32
with an uninterrupted reference run of the same rank count: bitwise equal.

One TSV line per trial: family, id, outcome (ok | missed | failure), seconds
from kill to exit, detail. Outcome 'missed' is a kill that came after the job
had ended (not a failure; counted). Python here only for the timing: a poll of
the checkpoint directory every millisecond to kill inside a write.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

KILL_TIMEOUT_S = 60  # a job that outlives a lost rank by this long is hung


def state_crc(path):
    try:
        out = subprocess.run(["h5dump", "-a", "/state_crc32", path], capture_output=True, text=True).stdout
    except OSError:
        return None
    m = re.search(r"\(0\): (\d+)", out)
    return m.group(1) if m else None


def rank_pids(tag, exe):
    """{rank: pid} of the mpitrain processes whose environment carries FAULTS_TAG=tag."""
    name = os.path.basename(exe)[:15]
    found = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"FAULTS_TAG={tag}".encode() not in env:
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                found[int(e.split(b"=", 1)[1])] = int(p)
    return found


def run(cmd, out_dir, name, timeout):
    """Runs cmd to the end; returns (rc, seconds, stdout+stderr text)."""
    t0 = time.monotonic()
    with open(f"{out_dir}/{name}.out", "w") as out, open(f"{out_dir}/{name}.err", "w") as err:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.monotonic() - t0, read(f"{out_dir}/{name}.out") + read(f"{out_dir}/{name}.err")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for_text(path, text, p, limit_s):
    """The time `text` first shows in `path` (polled while the job runs), or None."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and p.poll() is None:
        if text in read(path):
            return time.monotonic()
        time.sleep(0.01)
    return None


class Trials:
    def __init__(self, family, spec):
        self.family, self.s = family, spec
        self.rng = random.Random(spec["seed"])
        self.results = open(spec["results"], "a")
        self.failures = 0

    def job(self, ck, extra=(), tag=None):
        env = ["-x", f"FAULTS_TAG={tag}"] if tag else []
        return (self.s["mpirun"] + ["-n", str(self.s["np"])] + env + [self.s["mpitrain"], "train"] + self.s["train"]
                + ["--checkpoint-dir", ck] + list(extra))

    def record(self, tid, problems, seconds, detail):
        outcome = "failure" if problems else ("missed" if detail.startswith("missed") else "ok")
        if problems:
            self.failures += 1
            detail = "; ".join(problems) + " | " + detail
        line = f"{self.family}\t{tid}\t{outcome}\t{seconds:.2f}\t{detail}"
        print(("FAIL " if problems else "  ") + line.replace("\t", "  "), flush=True)
        self.results.write(line + "\n")
        self.results.flush()

    def reference(self, extra=()):
        d = f"{self.s['work']}/ref"
        os.makedirs(d, exist_ok=True)
        rc, secs, text = run(self.job(f"{d}/ck", self.s.get("job_extra", []) + list(extra)), d, "ref", 300)
        crc = state_crc(f"{d}/ck/final.h5")
        if rc != 0 or not crc:
            print(f"FAIL {self.family}: the reference run failed (rc {rc}):\n{text[-2000:]}")
            sys.exit(1)
        print(f"  {self.family}: reference run {secs:.2f} s, final state_crc32 {crc}", flush=True)
        return secs, crc

    def start(self, d, ck, tag):
        out, err = open(f"{d}/job.out", "w"), open(f"{d}/job.err", "w")
        p = subprocess.Popen(self.job(ck, self.s.get("job_extra", []), tag=tag), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return p, time.monotonic()

    def kill_and_wait(self, p, tag, rank, problems):
        """Kills `rank` of the job; returns (pid, seconds from kill to exit) or (None, 0) if it had ended."""
        deadline = time.monotonic() + 10
        pid = None
        while time.monotonic() < deadline and p.poll() is None:
            pid = rank_pids(tag, self.s["mpitrain"]).get(rank)
            if pid:
                break
            time.sleep(0.005)
        if p.poll() is not None or not pid:
            return None, 0.0
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None, 0.0
        t_kill = time.monotonic()
        try:
            rc = p.wait(timeout=KILL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            problems.append(f"the job was still running {KILL_TIMEOUT_S} s after the kill")
            p.kill()
            rc = p.wait()
        secs = time.monotonic() - t_kill
        if rc == 0:
            problems.append("the job exited 0 after losing a rank")
        time.sleep(0.2)
        left = rank_pids(tag, self.s["mpitrain"])
        if left:
            problems.append(f"ranks left running after the job ended: {sorted(left)}")
            for q in left.values():
                os.kill(q, signal.SIGKILL)
        return pid, secs

    def resume(self, d, ck, crc_ref, problems):
        """Resumes (or restarts, if nothing was written) and checks the final state; returns a note."""
        has_latest = os.path.exists(f"{ck}/latest")
        args = self.s.get("resume_extra", self.s.get("job_extra", [])) + (["--resume"] if has_latest else [])
        rc, _, text = run(self.job(ck, args), d, "resume", 300)
        crc = state_crc(f"{ck}/final.h5")
        if rc != 0:
            problems.append(f"the resume exited {rc}: {text.strip().splitlines()[-1:] if text.strip() else ''}")
        elif crc != crc_ref:
            problems.append(f"resumed final state_crc32 {crc} != the uninterrupted run's {crc_ref}")
        leftovers = [n for n in os.listdir(ck) if ".tmp" in n]
        if leftovers:
            problems.append(f"temporary files left after the resume: {leftovers}")
        m = re.search(r"resuming from \S+/(\S+): epoch (\d+), step (\d+)", text)
        return f"resumed from {m.group(1)} (epoch {m.group(2)} step {m.group(3)})" if m else "restarted (no checkpoint yet)"

    def finish(self):
        self.results.close()
        return 1 if self.failures else 0


def random_kills(spec):
    """A random rank killed at a random time of the run, then --resume."""
    t = Trials("kill-random-rank", spec)
    ref_s, crc_ref = t.reference()
    for i in range(spec["trials"]):
        d = f"{spec['work']}/trial{i}"
        ck = f"{d}/ck"
        os.makedirs(d, exist_ok=True)
        rank = t.rng.randrange(spec["np"])
        at = t.rng.uniform(0.05, 0.75) * ref_s
        tag = f"faults-{os.getpid()}-r{i}"
        p, t0 = t.start(d, ck, tag)
        # The clock starts once every rank is past start-up (rank 0 prints the
        # lr plan after the first collectives): a rank killed inside MPI_Init
        # can leave Open MPI 4.1.4's mpiexec hanging, which is not mpitrain's
        # to fix and would make the campaign flaky.
        started = wait_for_text(f"{d}/job.out", "lr plan", p, 60)
        if started is not None:  # `at` is a share of the reference run's training, not of its start-up
            at = at * max(0.2, 1.0 - (started - t0) / ref_s)
            t0 = started
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        problems = []
        pid, secs = t.kill_and_wait(p, tag, rank, problems)
        if pid is None:
            p.wait()
            t.record(f"trial{i}", [], 0.0, f"missed: the job had ended {at:.2f} s after its start")
            continue
        text = read(f"{d}/job.out") + read(f"{d}/job.err")
        # Open MPI may print PID 0 for the lost process: the rank is what counts.
        if not re.search(rf"process rank {rank} with PID \d+ .*exited on signal 9", text):
            problems.append(f"the launcher's message does not name rank {rank} killed by signal 9")
        note = t.resume(d, ck, crc_ref, problems)
        t.record(f"trial{i}", problems, secs, f"rank {rank} killed at {at:.2f} s; {note}")
        if not problems:
            shutil.rmtree(ck)
    return t.finish()


def write_kills(spec):
    """Rank 0 killed at a random point inside one of the first checkpoint writes."""
    t = Trials("kill-in-checkpoint-write", spec)
    metrics = f"{spec['work']}/ref/metrics.jsonl"
    ref_s, crc_ref = t.reference(["--metrics", metrics])
    with open(metrics) as f:
        writes = [json.loads(line) for line in f if '"checkpoint"' in line]
    write_s = sorted(w["seconds"] for w in writes)[len(writes) // 2]
    mb = writes[0]["mb"] if writes else 0
    print(f"  {t.family}: {len(writes)} writes of {mb:.1f} MB in the reference run, median {write_s:.3f} s", flush=True)
    for i in range(spec["trials"]):
        d = f"{spec['work']}/trial{i}"
        ck = f"{d}/ck"
        os.makedirs(d, exist_ok=True)
        nth = t.rng.randint(1, spec.get("max_write", 3))
        frac = t.rng.uniform(0.02, 0.98)
        tag = f"faults-{os.getpid()}-w{i}"
        p, _ = t.start(d, ck, tag)
        seen, tmp = [], None
        while p.poll() is None and len(seen) < nth:  # the nth temporary checkpoint file to appear
            try:
                names = os.listdir(ck)
            except FileNotFoundError:
                names = []
            for n in names:
                if ".h5.tmp." in n and n not in seen:
                    seen.append(n)
            time.sleep(0.001)
        problems = []
        if len(seen) < nth:
            p.wait()
            t.record(f"trial{i}", [], 0.0, f"missed: the job ended before write {nth}")
            continue
        tmp = seen[nth - 1]
        time.sleep(frac * write_s)
        try:
            size_mb = os.path.getsize(f"{ck}/{tmp}") / 1e6
            where = f"{size_mb:.1f} of {mb:.1f} MB written"
        except OSError:
            where = "after its rename"
        pid, secs = t.kill_and_wait(p, tag, 0, problems)
        if pid is None:
            p.wait()
            t.record(f"trial{i}", [], 0.0, f"missed: the job ended before the kill in write {nth}")
            continue
        # `latest` names a complete checkpoint; every visible checkpoint is complete.
        visible = sorted(n for n in os.listdir(ck) if n.endswith(".h5") and not n.startswith("."))
        latest = read(f"{ck}/latest").strip()
        if latest and latest not in visible:
            problems.append(f"latest names '{latest}', which is not in the directory")
        if visible and not latest:
            problems.append(f"checkpoints {visible} but no latest")
        for n in visible:
            rc, _, text = run(spec["mpitrain_solo"] + ["inspect", f"{ck}/{n}"], d, "inspect", 60)
            if rc != 0 or "checksum OK" not in text:
                problems.append(f"visible checkpoint {n} does not inspect as complete (rc {rc})")
        note = t.resume(d, ck, crc_ref, problems)
        t.record(f"trial{i}", problems, secs,
                 f"write {nth} ({tmp}) killed {frac * write_s:.3f} s in, {where}; latest '{latest}'; {note}")
        if not problems:
            shutil.rmtree(ck)  # 100 MB of checkpoints
    return t.finish()


def main():
    family, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    sys.exit({"random": random_kills, "in-write": write_kills}[family](spec))


if __name__ == "__main__":
    main()
