#!/usr/bin/env python3
"""Measures sop against its floor and its peers in one run; see bench/README.md.

Prints `name: value unit` lines (median of several runs, with min and max) and writes
bench/RESULTS.md. Every process it starts is stopped at exit (also on Ctrl-C).
"""
import argparse
import atexit
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
SOP = os.path.join(ROOT, "target", "release", "sop")
TOOLS = os.path.join(BENCH, "tools")
BENCHTOOL = os.path.join(TOOLS, "benchtool")
JUST = os.path.join(TOOLS, "bin", "just")
PUEUE = os.path.join(TOOLS, "bin", "pueue")
PUEUED = os.path.join(TOOLS, "bin", "pueued")
TERMINAL = ("success", "failure", "rejected", "cancelled", "timed_out")

sys.path.insert(0, BENCH)
from gen_sop import write_sop  # noqa: E402

STARTED = []  # every long-running process we start, stopped at exit
FIG = {}  # name -> dict(median, min, max, unit)


def stop_all():
    for p in STARTED:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def start(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    STARTED.append(p)
    return p


def report(name, values, unit, scale=1.0, digits=3):
    vals = [v * scale for v in values]
    med = statistics.median(vals)
    FIG[name] = {"median": med, "min": min(vals), "max": max(vals), "unit": unit}
    extra = f" (min {min(vals):.{digits}f}, max {max(vals):.{digits}f}, n={len(vals)})" if len(vals) > 1 else ""
    print(f"{name}: {med:.{digits}f} {unit}{extra}", flush=True)
    return med


def single(name, value, unit, digits=3):
    FIG[name] = {"median": value, "min": value, "max": value, "unit": unit}
    print(f"{name}: {value:.{digits}f} {unit}", flush=True)
    return value


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def new_home(tmp, name, workers=None):
    home = os.path.join(tmp, name)
    os.makedirs(os.path.join(home, "sops"))
    with open(os.path.join(home, "sop.toml"), "w") as f:
        if workers:
            f.write(f"workers = {workers}\n")
    return home


# --- local figures -------------------------------------------------------------------


def sop_pair(home, n, prefix=()):
    """T(1 step) and T(n steps) of `sop run`, one after the other."""
    t1 = timed([*prefix, SOP, "--home", home, "run", "s1"])
    return t1, timed([*prefix, SOP, "--home", home, "run", f"s{n}"])


def per_step(pairs, n):
    """(T(n) - T(1)) / (n - 1) per repetition, T(1) the median of all repetitions' (one
    step is mostly process start, which varies on its own)."""
    t1 = statistics.median(a for a, _ in pairs)
    return [(tn - t1) / (n - 1) for _, tn in pairs]


def per_step_sop(home, n, reps, prefix=()):
    """Per step of an `n`-step `sop run`, `reps` times. `prefix`: a command sop runs under."""
    return per_step([sop_pair(home, n, prefix) for _ in range(reps)], n)


def bench_local(tmp, reps, big_reps):
    home = new_home(tmp, "local")
    for n in (1, 10, 100, 1000):
        write_sop(home, f"s{n}", n)
    timed([SOP, "--home", home, "run", "s1"])  # creates the store
    # just: 100 recipes, each `true` through `bash -c`
    jdir = os.path.join(tmp, "just")
    os.makedirs(jdir)
    for n in (1, 100):
        with open(os.path.join(jdir, f"j{n}"), "w") as jf:
            jf.write('set shell := ["bash", "-c"]\n\n')
            jf.write("all: " + " ".join(f"r{i}" for i in range(1, n + 1)) + "\n\n")
            for i in range(1, n + 1):
                jf.write(f"r{i}:\n    @true\n\n")

    def floor_pair():
        # the floor: a small Rust program spawning `bash -c true`, output captured
        t1 = float(subprocess.check_output([BENCHTOOL, "floor", "1"]))
        return t1, float(subprocess.check_output([BENCHTOOL, "floor", "100"]))

    def just_pair():
        t1 = timed([JUST, "--justfile", os.path.join(jdir, "j1"), "all"])
        return t1, timed([JUST, "--justfile", os.path.join(jdir, "j100"), "all"])

    # The three take turns (the first of each repetition rotates), so the machine's drift
    # over the minutes of the run falls on all three alike.
    measures = {"floor": floor_pair, "sop": lambda: sop_pair(home, 100)}
    if os.path.exists(JUST):
        measures["just"] = just_pair
    pairs = {name: [] for name in measures}
    order = list(measures)
    for r in range(reps):
        for name in order[r % len(order):] + order[: r % len(order)]:
            pairs[name].append(measures[name]())
    f = report("floor_per_step", per_step(pairs["floor"], 100), "ms", 1000)
    j = report("just_per_step", per_step(pairs["just"], 100), "ms", 1000) if "just" in pairs else None
    s = report("sop_per_step_100", per_step(pairs["sop"], 100), "ms", 1000)
    single("sop_added_per_step_over_floor", s - f, "ms")
    if j:
        single("sop_per_step_vs_just", s / j, "x")
    # 9 steps are little time next to process start: more repetitions to see them
    report("sop_per_step_10", per_step_sop(home, 10, max(3 * reps, 9)), "ms", 1000)
    report("sop_per_step_1000", per_step_sop(home, 1000, big_reps), "ms", 1000)
    for n in (10, 100, 1000):
        d = os.path.join(home, "logs", "sop", f"s{n}")
        size = max(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d) if x.endswith(".json"))
        single(f"audit_file_bytes_{n}_steps", size / 1024, "KiB", 1)
    per = [FIG[f"sop_per_step_{n}"]["median"] for n in (10, 100, 1000)]
    single("growth_per_step_1000_vs_10", per[2] / per[0], "x")
    # A diagnostic, not a target: sop (and its steps) on one CPU (one this process may use). On two, sop's work while a
    # step runs (the pid commit) overlaps the step only as long as the scheduler places them
    # on different CPUs, which it stops doing some ~100 ms into a run; on one CPU nothing
    # overlaps, so what is left of the growth is work that grows with the run.
    if shutil.which("taskset"):
        one = ["taskset", "-c", str(min(os.sched_getaffinity(0)))]
        a = report("sop_per_step_10_one_cpu", per_step_sop(home, 10, max(3 * reps, 9), one), "ms", 1000)
        b = report("sop_per_step_1000_one_cpu", per_step_sop(home, 1000, big_reps, one), "ms", 1000)
        single("growth_per_step_1000_vs_10_one_cpu", b / a, "x")


def bench_validate(tmp, reps):
    home = new_home(tmp, "validate")
    for i in range(1000):
        write_sop(home, f"sop-{i:04d}", 20)
    empty = new_home(tmp, "empty")
    # warm the page cache once
    subprocess.run([SOP, "--home", home, "validate"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    v = report("validate_1000x20", [timed([SOP, "--home", home, "validate"]) for _ in range(reps)], "ms", 1000, 1)
    lst = report("list_zero_sops", [timed([SOP, "--home", empty, "list"]) for _ in range(reps)], "ms", 1000, 1)
    single("validate_vs_process_start", v / lst, "x", 1)


# --- daemon figures ------------------------------------------------------------------


class Daemon:
    def __init__(self, home):
        self.home = home
        self.log = open(os.path.join(home, "serve.log"), "w+")
        self.proc = start([SOP, "--home", home, "serve", "--bind", "127.0.0.1:0"],
                          stdout=self.log, stderr=subprocess.STDOUT)
        self.addr = None
        deadline = time.time() + 30
        while time.time() < deadline and self.addr is None:
            self.log.seek(0)
            m = re.search(r"listening on http://(\S+)", self.log.read())
            if m:
                self.addr = m.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.addr is None:
            self.log.seek(0)
            raise SystemExit(f"sop serve did not start:\n{self.log.read()}")
        self.db = None

    def count(self, where):
        if self.db is None:
            self.db = sqlite3.connect(f"file:{os.path.join(self.home, 'state', 'sop.db')}?mode=ro", uri=True, timeout=30)
        return self.db.execute(f"SELECT count(*) FROM runs WHERE {where}").fetchone()[0]

    def wait_count(self, where, n, timeout=3600, every=0.01):
        """Polls every `every` s, and every 1 ms once at most 8 runs are left, so the time
        measured overshoots the last run's end by ~1 ms, not up to `every`."""
        deadline = time.time() + timeout
        while (seen := self.count(where)) < n:
            if time.time() > deadline:
                raise SystemExit(f"timed out waiting for {n} runs with {where}")
            if self.proc.poll() is not None:
                raise SystemExit("sop serve died")
            time.sleep(0.001 if n - seen <= 8 else every)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def post(self, path, n, conc, body="{}"):
        out = subprocess.check_output([BENCHTOOL, "post", self.addr, path, body, str(n), str(conc)], text=True)
        lines = out.strip().splitlines()
        total = float(lines[-1].split()[1])
        rows = [line.split(" ", 1) for line in lines[:-1]]
        return total, [(float(a), json.loads(b)) for a, b in rows]

    def stop(self):
        if self.db:
            self.db.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def daemon_home(tmp, name):
    home = new_home(tmp, name, workers=2)
    # as parallel as xargs -P2: two workers, and the SOP lets two runs execute at once
    write_sop(home, "one", 1, max_concurrent=2)
    # step 2 waits for approval, then notes when its process started
    d = os.path.join(home, "sops", "gate2")
    write_sop(home, "gate2", 2, approval=True)
    os.makedirs(os.path.join(d, "marks"))
    md = open(os.path.join(d, "SOP.md")).read().replace(
        "2. **Step 2** [requires_approval: true]\n   ```bash\n   true\n",
        '2. **Step 2** [requires_approval: true]\n   ```bash\n   printf %s "$EPOCHREALTIME" > "marks/$SOP_RUN_ID"\n')
    open(os.path.join(d, "SOP.md"), "w").write(md)
    write_sop(home, "hold", 1, mode="supervised")
    return home


def pct(vals, p):
    s = sorted(vals)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def sop_drain(tmp, n, tag):
    """Seconds for a fresh daemon to be sent `n` executes and finish them all."""
    home = daemon_home(tmp, f"drain{n}-{tag}")
    d = Daemon(home)
    t = time.perf_counter()
    d.post("/api/sops/one/execute", n, 8)
    d.wait_count("status IN ('success')", n)
    took = time.perf_counter() - t
    d.stop()
    # kept until the end: removing thousands of files frees inodes, and on ext4 without a
    # journal that slows inode allocation (the next repetition's) for ~30 s
    return took


def xargs_drain(n):
    t = time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P2 -I{{}} bash -c true", shell=True, check=True)
    return time.perf_counter() - t


def bench_daemon(tmp, n_drain, n_mem, reps, drain_reps, pueue_jobs, full):
    # sop against the xargs floor, alternately, so both see the same minutes of the
    # machine's drift
    xs, ss = [], []
    for r in range(drain_reps):
        xs.append(xargs_drain(n_drain))
        ss.append(sop_drain(tmp, n_drain, r))
    x = report(f"xargs_drain_{n_drain}", xs, "s")
    s = report(f"sop_drain_{n_drain}", ss, "s")
    single(f"sop_drain_{n_drain}_vs_xargs_throughput", x / s * 100, "%", 1)
    single(f"sop_drain_{n_drain}_per_run", s / n_drain * 1000, "ms")
    if full:
        # several, as every figure: one slow minute made a single 10,000-run drain 20 % slower
        s10 = report("sop_drain_10000", [sop_drain(tmp, 10000, r) for r in range(reps)], "s")
        single("sop_drain_10000_per_run", s10 / 10000 * 1000, "ms")
        single("growth_drain_per_run_10000_vs_1000", (s10 / 10000) / (s / 1000), "x")
    # pueue
    if os.path.exists(PUEUED):
        rate = bench_pueue(tmp, pueue_jobs)
        single(f"pueue_jobs_per_s_{pueue_jobs}", rate, "jobs/s", 2)
        single("sop_vs_pueue_throughput", (n_drain / s) / rate, "x", 1)

    # enqueue latency, 64 clients; approval latency; memory — one daemon
    home = daemon_home(tmp, "api")
    d = Daemon(home)
    time.sleep(1)
    idle = d.rss_kib()
    p50s, p99s, rates = [], [], []
    per = 10
    for _ in range(reps):
        total, rows = d.post("/api/sops/hold/execute", 64 * per, 64)
        lat = [a for a, _ in rows]
        p50s.append(pct(lat, 50))
        p99s.append(pct(lat, 99))
        rates.append(len(lat) / total)
    report("enqueue_p50_64_clients", p50s, "ms", 1000, 2)
    report("enqueue_p99_64_clients", p99s, "ms", 1000, 2)
    report("enqueue_rate_64_clients", rates, "req/s", 1, 0)
    # memory: runs waiting at approval (the enqueues above count)
    have = 64 * per * reps
    if n_mem > have:
        d.post("/api/sops/hold/execute", n_mem - have, 8)
    d.wait_count("status = 'waiting_approval'", n_mem, every=0.1)
    time.sleep(1)
    busy = d.rss_kib()
    single("daemon_rss_idle", idle / 1024, "MiB", 1)
    single(f"daemon_rss_{n_mem}_waiting", busy / 1024, "MiB", 1)
    single(f"daemon_rss_added_{n_mem}_waiting", (busy - idle) / 1024, "MiB", 1)
    d.stop()

    # approval -> next step started, over 200 runs, API and CLI
    for via in ("api", "cli"):
        home = daemon_home(tmp, f"approve-{via}")
        d = Daemon(home)
        _, rows = d.post("/api/sops/gate2/execute", 200, 8)
        ids = [b["run_id"] for _, b in rows]
        d.wait_count("status = 'waiting_approval'", 200)
        marks = os.path.join(home, "sops", "gate2", "marks")
        lat = []
        if via == "api":
            out = subprocess.check_output([BENCHTOOL, "approve", d.addr, marks] + ids, text=True)
            for line in out.strip().splitlines():
                rid, at = line.split()
                lat.append(float(open(os.path.join(marks, rid)).read()) - float(at))
        else:
            for rid in ids:
                subprocess.run([SOP, "--home", home, "approve", rid], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                at = time.time()
                mark = os.path.join(marks, rid)
                while not os.path.exists(mark) or os.path.getsize(mark) == 0:
                    time.sleep(0.0005)
                lat.append(float(open(mark).read()) - at)
        single(f"approve_to_next_step_p50_{via}", pct(lat, 50) * 1000, "ms", 2)
        single(f"approve_to_next_step_p99_{via}", pct(lat, 99) * 1000, "ms", 2)
        d.stop()


def bench_pueue(tmp, jobs):
    base = os.path.join(tmp, "pueue")
    env = dict(os.environ)
    for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME"):
        env[k] = os.path.join(base, k.lower())
        os.makedirs(env[k], exist_ok=True)
    log = open(os.path.join(base, "pueued.log"), "w")
    p = start([PUEUED], env=env, stdout=log, stderr=subprocess.STDOUT)
    q = lambda *a: subprocess.run([PUEUE, *a], env=env, check=True, capture_output=True, text=True)
    deadline = time.time() + 30
    while True:
        try:
            q("status")
            break
        except subprocess.CalledProcessError:
            if time.time() > deadline:
                raise SystemExit("pueued did not start")
            time.sleep(0.05)
    q("parallel", "2")
    t = time.perf_counter()
    for _ in range(jobs):
        q("add", "--", "bash", "-c", "true")
    while True:
        st = json.loads(q("status", "--json").stdout)
        done = sum(1 for task in st["tasks"].values() if "Done" in json.dumps(task["status"]))
        if done >= jobs:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - t
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    return jobs / elapsed


# --- results table -------------------------------------------------------------------


def fmt(name, digits=2):
    f = FIG.get(name)
    if not f:
        return "not measured"
    if f["min"] != f["max"]:
        return f"{f['median']:.{digits}f} {f['unit']} ({f['min']:.{digits}f}–{f['max']:.{digits}f})"
    return f"{f['median']:.{digits}f} {f['unit']}"


def val(name):
    return FIG.get(name, {}).get("median")


def verdict(ok):
    if ok is None:
        return "not measured"
    return "met" if ok else "**missed**"


def write_results(args, started):
    n = args.drain
    rows = []
    s, fl, j = val("sop_per_step_100"), val("floor_per_step"), val("just_per_step")
    added = val("sop_added_per_step_over_floor")
    rows.append(("per-step cost, 100 sequential `true` steps (durable)", fmt("sop_per_step_100"),
                 f"floor {fmt('floor_per_step')}; just {fmt('just_per_step')}",
                 f"{s / fl:.2f}× floor ({added:+.2f} ms); {s / j:.3f}× just" if s and fl and j else "",
                 "≤ 0.5 ms over floor, ≤ just",
                 "" if s is None else f"over floor {verdict(added <= 0.5)}; ≤ just {verdict(None if j is None else s <= j)}"))
    sd, xd = val(f"sop_drain_{n}"), val(f"xargs_drain_{n}")
    pq = val(f"pueue_jobs_per_s_{args.pueue_jobs}")
    rows.append((f"queue drain, {n} one-step runs, workers = 2", fmt(f"sop_drain_{n}"),
                 f"xargs -P2 {fmt(f'xargs_drain_{n}')}; pueue {fmt(f'pueue_jobs_per_s_{args.pueue_jobs}')} ({args.pueue_jobs} jobs)",
                 (f"{xd / sd * 100:.1f} % of xargs throughput" if sd else "")
                 + (f"; {(n / sd) / pq:.0f}× pueue" if sd and pq else ""),
                 "≥ 50 % of xargs, ≥ 100× pueue",
                 "" if sd is None else f"xargs {verdict(xd / sd >= 0.5)}; pueue {verdict(None if pq is None else (n / sd) / pq >= 100)}"))
    p99 = val("enqueue_p99_64_clients")
    rows.append(("enqueue latency, 64 concurrent clients", f"p50 {fmt('enqueue_p50_64_clients')}; p99 {fmt('enqueue_p99_64_clients')}; {fmt('enqueue_rate_64_clients', 0)}",
                 "—", "", "p99 ≤ 20 ms", verdict(None if p99 is None else p99 <= 20)))
    a99, c99 = val("approve_to_next_step_p99_api"), val("approve_to_next_step_p99_cli")
    rows.append(("approval → next step started, 200 runs", f"API: p50 {fmt('approve_to_next_step_p50_api')}, p99 {fmt('approve_to_next_step_p99_api')}; CLI `sop approve`: p50 {fmt('approve_to_next_step_p50_cli')}, p99 {fmt('approve_to_next_step_p99_cli')}",
                 "—", "", "p99 ≤ 50 ms",
                 "" if a99 is None else f"API {verdict(a99 <= 50)}; CLI {verdict(c99 <= 50)}"))
    m = args.mem
    add = val(f"daemon_rss_added_{m}_waiting")
    rows.append((f"memory, {m} runs waiting at approval", fmt(f"daemon_rss_{m}_waiting", 1), f"idle daemon {fmt('daemon_rss_idle', 1)}",
                 f"+{add:.1f} MiB" if add is not None else "", "≤ 64 MiB more than idle" + ("" if m == 10000 else " (at 10,000)"),
                 verdict(None if add is None else add <= 64)))
    v = val("validate_1000x20")
    rows.append(("validation, 1,000 SOPs × 20 steps", fmt("validate_1000x20", 1), f"`sop list`, zero SOPs {fmt('list_zero_sops', 1)}",
                 f"{val('validate_vs_process_start'):.1f}× process start" if v else "", "≤ 150 ms total",
                 verdict(None if v is None else v <= 150)))
    g = val("growth_per_step_1000_vs_10")
    gd = val("growth_drain_per_run_10000_vs_1000")
    g1 = val("growth_per_step_1000_vs_10_one_cpu")
    rows.append(("growth: per step at 10 / 100 / 1,000 steps", f"{fmt('sop_per_step_10')} / {fmt('sop_per_step_100')} / {fmt('sop_per_step_1000')}",
                 f"audit file {fmt('audit_file_bytes_10_steps', 1)} / {fmt('audit_file_bytes_100_steps', 1)} / {fmt('audit_file_bytes_1000_steps', 1)}",
                 (f"1,000 vs 10: {g:.2f}×" if g else "")
                 + (f" (on one CPU: {fmt('sop_per_step_10_one_cpu')} / {fmt('sop_per_step_1000_one_cpu')}, {g1:.2f}×)" if g1 else ""),
                 "flat within 20 %", verdict(None if g is None else g <= 1.2)))
    rows.append(("growth: drain per run at 1,000 / 10,000 runs",
                 f"{fmt(f'sop_drain_{n}_per_run')} / {fmt('sop_drain_10000_per_run')}", "—",
                 f"{gd:.2f}×" if gd else "run with `--full`", "flat within 20 %", verdict(None if gd is None else gd <= 1.2)))
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `bench/run.sh {' '.join(sys.argv[1:])}`".rstrip() + f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{os.cpu_count()} CPUs, {args.reps} repetitions (median, min–max in brackets). "
        "Absolute times are noise on a shared machine; the ratios were measured in the same run. "
        "The floor is a small Rust program (`bench/src/benchtool.rs`) spawning `bash -c true` "
        "with its output captured. Per-step figures are (T(n steps) − T(1 step)) / (n − 1).",
        "",
        "| figure | sop | baseline(s) | ratio | target | met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "All figures (`name: median unit (min, max)`):", "", "```"]
    for k, f in FIG.items():
        lines.append(f"{k}: {f['median']:.3f} {f['unit']} (min {f['min']:.3f}, max {f['max']:.3f})")
    lines += ["```", ""]
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines))
    print(f"wrote {args.out}")


# Removing a run's thousands of files frees inodes, and on ext4 without a journal that
# slows every inode allocation (sop's audit files, not xargs) for minutes: drains started
# within ~6 minutes of the previous run's clean-up were 5-10 % slower (bench/README.md).
SETTLE_S = 360
CLEANED = os.path.join(TOOLS, "last-cleanup")


def mark_cleanup():
    os.makedirs(TOOLS, exist_ok=True)
    with open(CLEANED, "w") as f:
        f.write(f"{time.time()}\n")


def settle_after_previous_cleanup():
    try:
        with open(CLEANED) as f:
            since = time.time() - float(f.read().strip() or 0)
    except (OSError, ValueError):
        return
    if 0 <= since < SETTLE_S:
        wait = SETTLE_S - since
        print(f"waiting {wait:.0f} s: the previous run cleaned up {since:.0f} s ago "
              f"(--no-settle starts at once)", flush=True)
        time.sleep(wait)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5, help="repetitions per figure (median)")
    ap.add_argument("--drain", type=int, default=1000, help="runs in the queue-drain figure")
    ap.add_argument("--mem", type=int, default=1000, help="runs waiting at approval for the memory figure")
    ap.add_argument("--full", action="store_true", help="issue 4's full sizes: drain 10,000 as well, memory at 10,000")
    ap.add_argument("--pueue-jobs", type=int, default=30, help="jobs for pueue (it drains ~3-6 jobs/s)")
    ap.add_argument("--only", default="local,validate,daemon", help="comma-separated: local, validate, daemon")
    ap.add_argument("--out", default=os.path.join(BENCH, "RESULTS.md"))
    ap.add_argument("--no-settle", action="store_true",
                    help="start at once, even within 6 minutes of the previous run's clean-up")
    args = ap.parse_args()
    if args.full:
        args.mem = 10000
    # sop gives its steps the login shell as SHELL when it has none (README, "Run"); the
    # baselines' bash gets the same, or it would look it up at every start and pay what
    # sop's steps do not.
    if "SHELL" not in os.environ:
        try:
            shell = pwd.getpwuid(os.getuid()).pw_shell
        except KeyError:
            shell = ""
        if shell:
            os.environ["SHELL"] = shell
    if not args.no_settle:
        settle_after_previous_cleanup()
    started = time.time()
    only = args.only.split(",")
    tmp = tempfile.mkdtemp(prefix="sop-bench-")
    try:
        if "local" in only:
            bench_local(tmp, args.reps, max(1, min(args.reps, 3)))
        if "validate" in only:
            bench_validate(tmp, args.reps)
        if "daemon" in only:
            bench_daemon(tmp, args.drain, args.mem, max(1, min(args.reps, 3)), max(1, args.reps),
                         args.pueue_jobs, args.full)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        mark_cleanup()
    write_results(args, started)


if __name__ == "__main__":
    main()
