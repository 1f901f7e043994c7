//! How much memory this process may still take: the tightest of the kernel's MemAvailable and
//! the limits of the memory cgroups it runs in (v2 `memory.max`, v1 `memory.limit_in_bytes`,
//! at every level from its own cgroup up to the hierarchy's root), each less what the cgroup
//! already holds. /proc/meminfo shows the host's memory, not a container's: planning from it
//! alone gets a process in a 500 MB container killed by the OOM killer.
//!
//! Page cache is charged to a cgroup but the kernel reclaims it before it kills, so a cgroup's
//! file cache counts as available.

use std::fmt;
use std::path::{Path, PathBuf};

/// Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 62;

/// Where a memory figure comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitSource {
    /// /proc/meminfo's MemAvailable.
    MemAvailable,
    /// A cgroup v2 directory's `memory.max`.
    CgroupV2(PathBuf),
    /// A cgroup v1 directory's `memory.limit_in_bytes`.
    CgroupV1(PathBuf),
}

impl LimitSource {
    /// A short name for JSON: `meminfo`, `cgroup2` or `cgroup1`.
    pub fn kind(&self) -> &'static str {
        match self {
            LimitSource::MemAvailable => "meminfo",
            LimitSource::CgroupV2(_) => "cgroup2",
            LimitSource::CgroupV1(_) => "cgroup1",
        }
    }
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSource::MemAvailable => write!(f, "MemAvailable in /proc/meminfo"),
            LimitSource::CgroupV2(d) => write!(f, "cgroup v2 memory.max of {}", d.display()),
            LimitSource::CgroupV1(d) => {
                write!(f, "cgroup v1 memory.limit_in_bytes of {}", d.display())
            }
        }
    }
}

/// The memory this process may still take, and the limit that sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    /// Bytes available: the limit less what is already in use.
    pub available: u64,
    /// The limit itself (MemAvailable's figure when no cgroup is tighter).
    pub limit: u64,
    pub source: LimitSource,
}

/// Hands the heap's free pages back to the kernel (after a large table is dropped), so they
/// stop counting against the process's limit. A no-op where the C library cannot.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap under its lock; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The tightest memory limit of this process, read from the live system.
pub fn memory_limit() -> Option<MemoryLimit> {
    read_limit(Path::new("/"))
}

/// [`memory_limit`] with every system path under `root` (tests build a fake one).
pub fn read_limit(root: &Path) -> Option<MemoryLimit> {
    let mut best = mem_available(root).map(|a| MemoryLimit {
        available: a,
        limit: a,
        source: LimitSource::MemAvailable,
    });
    let mounts = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap_or_default();
    let groups = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
    for line in groups.lines() {
        let Some((v2, v1, path)) = parse_cgroup_line(line) else {
            continue;
        };
        if !v2 && !v1 {
            continue;
        }
        let Some((mount_root, mount_point)) = find_mount(&mounts, v2) else {
            continue;
        };
        let dir = cgroup_dir(root, &mount_root, &mount_point, path);
        let top = root.join(mount_point.trim_start_matches('/'));
        for level in dir.ancestors().take_while(|d| d.starts_with(&top)) {
            let found = if v2 { v2_level(level) } else { v1_level(level) };
            if let Some(l) = found {
                if best.as_ref().is_none_or(|b| l.available < b.available) {
                    best = Some(l);
                }
            }
        }
    }
    best
}

/// This process's own cgroup directory in the cgroup2 hierarchy (`v2`) or the v1 memory
/// hierarchy, as mounted here.
pub fn own_cgroup_dir(v2: bool) -> Option<PathBuf> {
    let root = Path::new("/");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = groups.lines().find_map(|line| {
        let (is_v2, is_v1, path) = parse_cgroup_line(line)?;
        ((v2 && is_v2) || (!v2 && is_v1)).then_some(path)
    })?;
    let (mount_root, mount_point) = find_mount(&mounts, v2)?;
    Some(cgroup_dir(root, &mount_root, &mount_point, path))
}

/// One /proc/self/cgroup line: whether it is the v2 entry, whether it holds the v1 memory
/// controller, and the cgroup's path.
fn parse_cgroup_line(line: &str) -> Option<(bool, bool, &str)> {
    let mut f = line.splitn(3, ':');
    let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
    let v2 = id == "0" && controllers.is_empty();
    let v1 = controllers.split(',').any(|c| c == "memory");
    Some((v2, v1, path))
}

/// MemAvailable in bytes.
fn mem_available(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The (root, mount point) of the cgroup2 mount, or of the v1 mount with the memory
/// controller, from mountinfo.
fn find_mount(mountinfo: &str, v2: bool) -> Option<(String, String)> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let pre: Vec<&str> = pre.split_whitespace().collect();
        let mut post = post.split_whitespace();
        let fstype = post.next()?;
        let _source = post.next();
        let opts = post.next().unwrap_or("");
        let ours = if v2 {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && opts.split(',').any(|o| o == "memory")
        };
        ours.then(|| Some((pre.get(3)?.to_string(), pre.get(4)?.to_string())))?
    })
}

/// The directory of cgroup `path` (as /proc/self/cgroup names it) under a mount of the
/// hierarchy's `mount_root` at `mount_point`. Inside a cgroup namespace the mount's root is
/// the process's own cgroup, which is then the mount point itself.
fn cgroup_dir(root: &Path, mount_root: &str, mount_point: &str, path: &str) -> PathBuf {
    let base = root.join(mount_point.trim_start_matches('/'));
    let rel = if mount_root == "/" {
        path
    } else {
        path.strip_prefix(mount_root).unwrap_or("")
    };
    base.join(rel.trim_start_matches('/'))
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// A `memory.stat` value.
fn stat(dir: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// One v2 level: memory.max less memory.current, its file cache counted as free.
fn v2_level(dir: &Path) -> Option<MemoryLimit> {
    let max = std::fs::read_to_string(dir.join("memory.max")).ok()?;
    let limit: u64 = max.trim().parse().ok()?; // "max": no limit here
    let used = read_u64(&dir.join("memory.current")).unwrap_or(0);
    let cache = stat(dir, "file").unwrap_or(0);
    Some(MemoryLimit {
        available: limit.saturating_sub(used.saturating_sub(cache)),
        limit,
        source: LimitSource::CgroupV2(dir.to_path_buf()),
    })
}

/// One v1 level: memory.limit_in_bytes (or the hierarchical limit of its ancestors, which
/// memory.stat reports even where they are not visible) less usage, its cache counted as free.
fn v1_level(dir: &Path) -> Option<MemoryLimit> {
    let own = read_u64(&dir.join("memory.limit_in_bytes"))?;
    let inherited = stat(dir, "hierarchical_memory_limit").unwrap_or(u64::MAX);
    let limit = own.min(inherited);
    if limit >= UNLIMITED {
        return None;
    }
    let used = read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
    let cache = stat(dir, "total_cache")
        .or_else(|| stat(dir, "cache"))
        .unwrap_or(0);
    Some(MemoryLimit {
        available: limit.saturating_sub(used.saturating_sub(cache)),
        limit,
        source: LimitSource::CgroupV1(dir.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A fake root: meminfo with `avail` MiB, and the given files.
    fn fake(name: &str, avail_mib: u64, files: &[(&str, String)]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("sluice-memlimit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut all = vec![(
            "proc/meminfo",
            format!(
                "MemTotal: 99999999 kB\nMemAvailable: {} kB\n",
                avail_mib * 1024
            ),
        )];
        all.extend(files.iter().map(|(p, s)| (*p, s.clone())));
        for (p, s) in all {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, s).expect("write");
        }
        root
    }

    #[test]
    fn without_cgroups_meminfo_sets_the_limit() {
        let root = fake("none", 2048, &[]);
        let l = read_limit(&root).expect("meminfo");
        assert_eq!(l.available, 2048 * MIB);
        assert_eq!(l.source, LimitSource::MemAvailable);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_v2_limit_tighter_than_meminfo_wins_with_cache_counted_free() {
        let root = fake(
            "v2",
            8192,
            &[
                ("proc/self/cgroup", "0::/box/app\n".into()),
                (
                    "proc/self/mountinfo",
                    "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n".into(),
                ),
                ("sys/fs/cgroup/box/memory.max", format!("{}\n", 500 * MIB)),
                (
                    "sys/fs/cgroup/box/memory.current",
                    format!("{}\n", 100 * MIB),
                ),
                (
                    "sys/fs/cgroup/box/memory.stat",
                    format!("anon 1\nfile {}\n", 40 * MIB),
                ),
                ("sys/fs/cgroup/box/app/memory.max", "max\n".into()),
                (
                    "sys/fs/cgroup/box/app/memory.current",
                    format!("{}\n", 90 * MIB),
                ),
            ],
        );
        let l = read_limit(&root).expect("a limit");
        assert_eq!(l.limit, 500 * MIB);
        assert_eq!(l.available, 440 * MIB, "500 − (100 − 40 of cache)");
        assert_eq!(
            l.source,
            LimitSource::CgroupV2(root.join("sys/fs/cgroup/box"))
        );
        assert_eq!(l.source.kind(), "cgroup2");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_v1_limit_is_found_through_the_memory_mount_and_namespaced_roots() {
        let mountinfo = "25 1 0:21 /box /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                         26 1 0:22 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n";
        let root = fake(
            "v1",
            8192,
            &[
                (
                    "proc/self/cgroup",
                    "5:cpu,cpuacct:/\n4:memory:/box\n".into(),
                ),
                ("proc/self/mountinfo", mountinfo.into()),
                (
                    "sys/fs/cgroup/memory/memory.limit_in_bytes",
                    format!("{}\n", 300 * MIB),
                ),
                (
                    "sys/fs/cgroup/memory/memory.usage_in_bytes",
                    format!("{}\n", 50 * MIB),
                ),
                (
                    "sys/fs/cgroup/memory/memory.stat",
                    format!(
                        "cache 0\nhierarchical_memory_limit {}\n",
                        9223372036854771712u64
                    ),
                ),
            ],
        );
        let l = read_limit(&root).expect("a limit");
        assert_eq!((l.limit, l.available), (300 * MIB, 250 * MIB));
        assert_eq!(l.source.kind(), "cgroup1");
        assert!(l.source.to_string().contains("memory.limit_in_bytes"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_unlimited_v1_group_leaves_meminfo_in_charge() {
        let root = fake(
            "v1-unlimited",
            1024,
            &[
                ("proc/self/cgroup", "4:memory:/\n".into()),
                (
                    "proc/self/mountinfo",
                    "25 1 0:21 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n".into(),
                ),
                (
                    "sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "9223372036854771712\n".into(),
                ),
            ],
        );
        assert_eq!(
            read_limit(&root).map(|l| l.source),
            Some(LimitSource::MemAvailable)
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn this_machine_has_a_limit() {
        let l = memory_limit().expect("a Linux machine reports MemAvailable");
        assert!(l.available > 0 && l.available <= l.limit, "{l:?}");
    }
}
