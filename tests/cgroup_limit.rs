//! Larger than the memory the process may use: `sluice run` with its default budget inside a
//! memory cgroup smaller than the model (v2 where the machine delegates the memory controller,
//! else v1) completes, gives the reference tokens, and peaks under the limit; it says which
//! limit it planned against. Where no memory cgroup can be created (not root, no controller)
//! the test prints why and checks nothing else. Needs the models of `scripts/fetch-models.sh`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{compare_greedy, greedy_args, load_reference, parse_run_json, path_arg, stderr};
use sluice::engine::memory_limit::own_cgroup_dir;
use sluice_loader::cache::require_model;

/// A memory cgroup this test made, removed when dropped.
struct Group {
    dir: PathBuf,
    v2: bool,
}

impl Group {
    /// A number from the group's v2 or v1 file.
    fn number(&self, v2_file: &str, v1_file: &str) -> Option<u64> {
        let f = if self.v2 { v2_file } else { v1_file };
        std::fs::read_to_string(self.dir.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The limit as the kernel holds it (rounded down to a page).
    fn limit(&self) -> Option<u64> {
        self.number("memory.max", "memory.limit_in_bytes")
    }

    /// The peak memory charged to the group.
    fn peak(&self) -> Option<u64> {
        self.number("memory.peak", "memory.max_usage_in_bytes")
    }

    /// How many times the kernel's OOM killer acted in the group.
    fn oom_kills(&self) -> u64 {
        let f = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Makes a child memory cgroup limited to `limit` bytes, or says why none can be made.
fn make_group(limit: u64) -> Result<Group, String> {
    let name = format!("sluice-test-{}", std::process::id());
    let mut why = Vec::new();
    for v2 in [true, false] {
        let kind = if v2 { "cgroup v2" } else { "cgroup v1" };
        let Some(own) = own_cgroup_dir(v2) else {
            why.push(format!("no {kind} memory mount"));
            continue;
        };
        if v2 {
            // A child of our own group, if its parent delegates the memory controller to it.
            let ctl =
                std::fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
            if !ctl.split_whitespace().any(|c| c == "memory") {
                let _ = std::fs::write(own.join("cgroup.subtree_control"), "+memory");
            }
        }
        let dir = own.join(&name);
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        match std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(dir.join(file), limit.to_string()))
        {
            Ok(()) => return Ok(Group { dir, v2 }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                why.push(format!("{kind} under {}: {e}", own.display()));
            }
        }
    }
    Err(why.join("; "))
}

#[test]
fn the_default_budget_fits_a_cgroup_smaller_than_the_model() {
    let model = require_model("qwen2.5-coder-0.5b");
    let size = std::fs::metadata(&model)
        .map(|m| m.len())
        .expect("model size");
    let group = match make_group(size * 6 / 10) {
        Ok(g) => g,
        Err(why) => {
            eprintln!("NOT RUN: no memory cgroup could be created here: {why}");
            return;
        }
    };
    let limit = group.limit().expect("the group's limit");
    assert!(limit < size);
    let reference = load_reference("qwen2.5-coder-0.5b");
    let p = &reference.prompts["A"];
    let max = reference.max_tokens.to_string();
    let args = greedy_args(path_arg(&model), &p.text, &max, "2");
    let procs = group.dir.join("cgroup.procs");
    // The shell moves itself into the group, then becomes sluice.
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$0" && exec "$@""#)
        .arg(&procs)
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(&args)
        .output()
        .expect("spawning sh");
    let kills = group.oom_kills();
    assert!(
        o.status.success(),
        "sluice run in a {limit}-byte cgroup ({}): {} (OOM kills: {kills})\n{}",
        group.dir.display(),
        o.status,
        stderr(&o)
    );
    assert_eq!(kills, 0, "the OOM killer acted");
    let run = parse_run_json(&o).unwrap_or_else(|e| panic!("{e}"));
    let cmp = compare_greedy(p, &run.tokens);
    assert!(cmp.passes(), "tokens: {}", cmp.describe());
    let peak = group.peak().expect("the group's peak memory");
    assert!(
        peak < limit,
        "peak {peak} bytes over the {limit}-byte limit"
    );
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let s = &stats["stats"];
    assert_eq!(s["memory_limit_bytes"].as_u64(), Some(limit), "{s}");
    assert_eq!(
        s["memory_limit_source"].as_str(),
        Some(if group.v2 { "cgroup2" } else { "cgroup1" })
    );
    assert!(s["streamed_layers"].as_u64() > Some(0), "{s}");
    eprintln!(
        "{} cgroup of {:.0} MB for a {:.0} MB model: peak {:.0} MB, {} layers streamed, {:.1} tok/s",
        if group.v2 { "v2" } else { "v1" },
        limit as f64 / 1e6,
        size as f64 / 1e6,
        peak as f64 / 1e6,
        s["streamed_layers"],
        s["decode_tok_per_s"].as_f64().unwrap_or(0.0)
    );
}
