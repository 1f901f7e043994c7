#!/usr/bin/env bash
# Larger than RAM for real: `sluice run` with its default budget and llama.cpp (mmap, its
# default) on the same model and prompt inside a memory cgroup at 0.25x, 0.5x and 1.5x the
# model file's size. Per limit and engine: completed or killed (and by whom), decode tok/s,
# bytes read from disk, peak memory charged to the cgroup. Prints a table and one JSON object,
# and writes an SVG bar chart of decode tok/s (--plot FILE.svg).
#
#   bench/larger-than-ram.sh [--llama-bench PATH] [--model ALIAS|PATH] [--tokens N]
#                            [--threads N] [--factors 0.25,0.5,1.5] [--plot FILE.svg]
#
# Needs root and a memory cgroup (v2 with the memory controller delegated, or v1). llama.cpp is
# not part of this repository: build it outside the repo and pass its llama-bench (or set
# LLAMA_BENCH), which mmaps the model by default (`-p 0 -n N`); without it only sluice runs.
# The page cache is dropped before every run, so each starts cold.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_BENCH="${LLAMA_BENCH:-}"
MODEL=qwen2.5-coder-0.5b
TOKENS=32
THREADS=2
FACTORS=0.25,0.5,1.5
PLOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-bench) LLAMA_BENCH="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --factors) FACTORS="$2"; shift 2 ;;
    --plot) PLOT="$2"; shift 2 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "larger-than-ram.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "larger-than-ram.sh: needs root to make memory cgroups" >&2; exit 1; }
cargo build --release --quiet
SLUICE="$PWD/target/release/sluice"
if [ -z "$LLAMA_BENCH" ]; then
  echo "larger-than-ram.sh: no --llama-bench given: sluice only" >&2
fi
exec python3 - "$SLUICE" "$MODEL" "$TOKENS" "$THREADS" "$FACTORS" "$LLAMA_BENCH" "$PLOT" <<'PY'
import json, os, re, subprocess, sys, time

sluice, model, tokens, threads, factors, llama, plot = sys.argv[1:8]
tokens, factors = int(tokens), [float(f) for f in factors.split(",")]
PROMPT = "Write a Python function that checks whether a number is prime."


def model_path():
    out = subprocess.run([sluice, "inspect", model, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"larger-than-ram.sh: {model}: {out.stderr.strip()}")
    return json.loads(out.stdout)["path"]


def mounts():
    for line in open("/proc/self/mountinfo"):
        pre, post = line.split(" - ", 1)
        pre, post = pre.split(), post.split()
        yield pre[3], pre[4], post[0], post[2] if len(post) > 2 else ""


def own_dir(v2):
    for root, point, fstype, opts in mounts():
        ok = fstype == "cgroup2" if v2 else fstype == "cgroup" and "memory" in opts.split(",")
        if not ok:
            continue
        for line in open("/proc/self/cgroup"):
            i, ctl, path = line.rstrip("\n").split(":", 2)
            if (v2 and i == "0" and ctl == "") or (not v2 and "memory" in ctl.split(",")):
                rel = path if root == "/" else path[len(root):] if path.startswith(root) else ""
                return os.path.join(point, rel.lstrip("/"))
    return None


class Group:
    def __init__(self, limit):
        self.dir = None
        why = []
        for v2 in (True, False):
            own = own_dir(v2)
            if own is None:
                why.append(f"no {'cgroup2' if v2 else 'cgroup v1 memory'} mount")
                continue
            d = os.path.join(own, f"sluice-ltr-{os.getpid()}")
            try:
                if v2:
                    try:
                        open(os.path.join(own, "cgroup.subtree_control"), "w").write("+memory")
                    except OSError:
                        pass
                os.mkdir(d)
                open(os.path.join(d, "memory.max" if v2 else "memory.limit_in_bytes"), "w").write(str(limit))
                self.dir, self.v2 = d, v2
                return
            except OSError as e:
                why.append(f"{d}: {e}")
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        sys.exit("larger-than-ram.sh: no memory cgroup could be made: " + "; ".join(why))

    def read(self, name):
        try:
            return open(os.path.join(self.dir, name)).read()
        except OSError:
            return ""

    def peak(self):
        v = self.read("memory.peak" if self.v2 else "memory.max_usage_in_bytes").strip()
        return int(v) if v.isdigit() else None

    def oom_kills(self):
        text = self.read("memory.events" if self.v2 else "memory.oom_control")
        m = re.search(r"^oom_kill (\d+)", text, re.M)
        return int(m.group(1)) if m else 0

    def close(self):
        for _ in range(50):
            try:
                os.rmdir(self.dir)
                return
            except OSError:
                time.sleep(0.1)


def drop_caches():
    subprocess.run(["sync"])
    try:
        open("/proc/sys/vm/drop_caches", "w").write("3")
    except OSError:
        pass


def run_in(group, argv):
    """Runs argv inside the group; returns (exit code, stdout, stderr, disk bytes read)."""
    p = subprocess.Popen(["sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(group.dir, "cgroup.procs")] + argv,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    read = 0
    io = f"/proc/{p.pid}/io"
    while p.poll() is None:
        try:
            m = re.search(r"^read_bytes: (\d+)", open(io).read(), re.M)
            read = int(m.group(1)) if m else read
        except OSError:
            pass
        time.sleep(0.05)
    out, err = p.communicate()
    return p.returncode, out, err, read


def sluice_run(group):
    code, out, err, read = run_in(group, [sluice, "run", "-m", path, "-p", PROMPT, "--raw", "--temperature", "0",
                                          "--max-tokens", str(tokens), "--threads", threads, "--json"])
    r = {"engine": "sluice", "exit": code}
    if code == 0:
        s = json.loads(out)["stats"]
        r.update(decode_tok_per_s=s["decode_tok_per_s"], bytes_read=s["bytes_read"], streamed_layers=s["streamed_layers"],
                 planned_against=s.get("memory_limit_source"))
    else:
        r["error"] = err.strip().splitlines()[-1:] if err.strip() else []
    return r, read


def llama_run(group):
    code, out, err, read = run_in(group, [llama, "-m", path, "-p", "0", "-n", str(tokens), "-t", threads, "-r", "1", "-o", "json"])
    r = {"engine": "llama.cpp (mmap)", "exit": code}
    if code == 0:
        j = json.loads(out)
        r["decode_tok_per_s"] = j[0]["avg_ts"]
        r["bytes_read"] = read
    else:
        r["error"] = err.strip().splitlines()[-1:] if err.strip() else []
    return r, read


path = model_path()
size = os.path.getsize(path)
rows = []
for f in factors:
    limit = int(size * f) // 4096 * 4096
    for engine in ["sluice"] + (["llama"] if llama else []):
        g = Group(limit)
        drop_caches()
        r, read = sluice_run(g) if engine == "sluice" else llama_run(g)
        r.update(factor=f, limit_bytes=limit, peak_bytes=g.peak(), oom_kills=g.oom_kills())
        r.setdefault("bytes_read", read)
        r["killed"] = r["exit"] != 0 and (r["oom_kills"] > 0 or r["exit"] in (-9, 137))
        g.close()
        rows.append(r)
        print(f"  {r['engine']:<17} {f:>5}x ({limit/1e6:6.0f} MB): " + (
            f"{r['decode_tok_per_s']:6.2f} tok/s, read {r['bytes_read']/1e6:8.0f} MB, peak {(r['peak_bytes'] or 0)/1e6:5.0f} MB"
            if r["exit"] == 0 else f"failed (exit {r['exit']}, {'OOM-killed' if r['killed'] else 'error'}) {r.get('error')}"),
            file=sys.stderr)

print(f"\n{os.path.basename(path)}: {size/1e6:.0f} MB, {tokens} tokens, {threads} threads")
print(f"{'limit':>14} | {'sluice tok/s':>12} | {'llama.cpp tok/s':>15} | {'ratio':>6} | {'sluice read MB':>14} | {'llama read MB':>13} | {'sluice peak MB':>14} | {'llama peak MB':>13}")
def cell(r, k, fmt):
    if r is None:
        return "-"
    if r["exit"] != 0:
        return "killed" if r["killed"] else f"exit {r['exit']}"
    v = r.get(k)
    return fmt.format(v) if v is not None else "-"
for f in factors:
    s = next(r for r in rows if r["factor"] == f and r["engine"] == "sluice")
    l = next((r for r in rows if r["factor"] == f and r["engine"] != "sluice"), None)
    ratio = "-"
    if l and s["exit"] == 0 and l["exit"] == 0:
        ratio = f"{s['decode_tok_per_s'] / l['decode_tok_per_s']:.2f}x"
    elif l and s["exit"] == 0:
        ratio = "inf"
    mb = lambda r, k: f"{(r or {}).get(k) / 1e6:.0f}" if (r or {}).get(k) is not None else "-"
    print(f"{f:>5}x {s['limit_bytes']/1e6:5.0f} MB | {cell(s, 'decode_tok_per_s', '{:.2f}'):>12} | "
          f"{cell(l, 'decode_tok_per_s', '{:.2f}'):>15} | {ratio:>6} | {mb(s, 'bytes_read'):>14} | "
          f"{mb(l, 'bytes_read'):>13} | {mb(s, 'peak_bytes'):>14} | {mb(l, 'peak_bytes'):>13}")
print(json.dumps({"model": path, "model_bytes": size, "tokens": tokens, "threads": int(threads), "runs": rows}))

if plot:
    w, h, pad = 640, 360, 50
    top = max([r.get("decode_tok_per_s") or 0 for r in rows] + [1])
    bw = (w - 2 * pad) / (len(factors) * 3)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="{w/2}" y="20" text-anchor="middle">decode tok/s in a memory cgroup, {os.path.basename(path)} ({size/1e6:.0f} MB)</text>',
           f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>']
    for i, f in enumerate(factors):
        for j, (eng, color) in enumerate([("sluice", "#1f77b4"), ("llama.cpp (mmap)", "#ff7f0e")]):
            r = next((r for r in rows if r["factor"] == f and r["engine"] == eng), None)
            if r is None:
                continue
            x = pad + (i * 3 + j + 0.5) * bw
            v = r.get("decode_tok_per_s") or 0
            bh = (h - 2 * pad - 20) * v / top
            svg.append(f'<rect x="{x:.1f}" y="{h-pad-bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="{color}"/>')
            label = f"{v:.2f}" if r["exit"] == 0 else ("killed" if r["killed"] else "failed")
            svg.append(f'<text x="{x+bw/2:.1f}" y="{h-pad-bh-4:.1f}" text-anchor="middle">{label}</text>')
        svg.append(f'<text x="{pad+(i*3+1.5)*bw:.1f}" y="{h-pad+16}" text-anchor="middle">{f}x ({int(size*f/1e6)} MB)</text>')
    svg.append(f'<rect x="{w-pad-150}" y="30" width="10" height="10" fill="#1f77b4"/><text x="{w-pad-135}" y="39">sluice (default budget)</text>')
    svg.append(f'<rect x="{w-pad-150}" y="46" width="10" height="10" fill="#ff7f0e"/><text x="{w-pad-135}" y="55">llama.cpp (mmap)</text>')
    svg.append("</svg>")
    open(plot, "w").write("\n".join(svg))
    print(f"larger-than-ram.sh: wrote {plot}", file=sys.stderr)
PY
