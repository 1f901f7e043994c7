//! The machine's CPU time as the kernel counts it on the first line of `/proc/stat`: how much
//! of a window went to work, to waiting and to the hypervisor, so a benchmark can tell a slow
//! engine from CPUs it did not get. On a virtual machine the host's work for a virtual disk can
//! run on the cores that back the guest's; the guest sees that time as `steal`.
//!
//! The counters are the whole machine's, every process's: a figure is the engine's only when
//! nothing else runs.

/// Fields of the `cpu` line after its name, counted from 0, in the kernel's order.
const USER: usize = 0;
const NICE: usize = 1;
const SYSTEM: usize = 2;
const IDLE: usize = 3;
const IOWAIT: usize = 4;
const IRQ: usize = 5;
const SOFTIRQ: usize = 6;
const STEAL: usize = 7;
/// Fields read; later ones (guest time) are already counted in `user` and `nice`.
const FIELDS: usize = 8;

/// One reading of the machine's CPU time, in the kernel's clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Counters {
    ticks: [u64; FIELDS],
}

/// How the CPUs spent a window, as shares of the CPU time the window held (they add up to 1).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(super) struct Shares {
    /// Running code: user, nice, system, interrupts.
    pub busy: f64,
    /// Idle, waiting on I/O included: work not ready or threads waiting on one another.
    pub idle: f64,
    /// Taken by the hypervisor while the guest had work to run.
    pub stolen: f64,
}

impl Counters {
    /// The machine's counters now; `None` where `/proc/stat` cannot be read or parsed.
    pub(super) fn read() -> Option<Counters> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        parse(&text)
    }

    /// How the CPUs spent the time from `self` to `later`; `None` when no tick passed or a
    /// counter ran backwards.
    pub(super) fn shares_until(&self, later: &Counters) -> Option<Shares> {
        let mut d = [0u64; FIELDS];
        for (i, slot) in d.iter_mut().enumerate() {
            *slot = later.ticks[i].checked_sub(self.ticks[i])?;
        }
        let total: u64 = d.iter().sum();
        if total == 0 {
            return None;
        }
        let share = |ticks: u64| ticks as f64 / total as f64;
        Some(Shares {
            busy: share(d[USER] + d[NICE] + d[SYSTEM] + d[IRQ] + d[SOFTIRQ]),
            idle: share(d[IDLE] + d[IOWAIT]),
            stolen: share(d[STEAL]),
        })
    }
}

/// The counters on the `cpu` line (all CPUs together) of a `/proc/stat` text. Kernels older
/// than 2.6.11 have no `steal` field; they are not accepted.
fn parse(text: &str) -> Option<Counters> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let mut fields = line.split_whitespace().skip(1);
    let mut ticks = [0u64; FIELDS];
    for slot in &mut ticks {
        *slot = fields.next()?.parse().ok()?;
    }
    Some(Counters { ticks })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
cpu  1000 10 200 5000 300 0 40 50 0 0
cpu0 500 5 100 2500 150 0 20 25 0 0
intr 12345";
    const AFTER: &str = "\
cpu  1700 10 250 5100 400 0 50 200 0 0
cpu0 850 5 125 2550 200 0 25 100 0 0";

    #[test]
    fn shares_of_a_window_add_up() {
        let a = parse(BEFORE).expect("before");
        let b = parse(AFTER).expect("after");
        // Differences: user 700, system 50, idle 100, iowait 100, softirq 10, steal 150.
        let s = a.shares_until(&b).expect("shares");
        let total = 1110.0;
        assert!((s.busy - 760.0 / total).abs() < 1e-12, "{s:?}");
        assert!((s.idle - 200.0 / total).abs() < 1e-12, "{s:?}");
        assert!((s.stolen - 150.0 / total).abs() < 1e-12, "{s:?}");
        assert!((s.busy + s.idle + s.stolen - 1.0).abs() < 1e-12);
    }

    #[test]
    fn no_window_and_backward_counters_give_none() {
        let a = parse(BEFORE).expect("before");
        let b = parse(AFTER).expect("after");
        assert!(a.shares_until(&a).is_none(), "no tick passed");
        assert!(b.shares_until(&a).is_none(), "counters never run backwards");
    }

    #[test]
    fn malformed_text_is_refused() {
        assert!(parse("").is_none());
        assert!(
            parse("cpu0 1 2 3 4 5 6 7 8").is_none(),
            "only the all-CPU line counts"
        );
        assert!(
            parse("cpu  1 2 3 4 5 6 7").is_none(),
            "a kernel without steal"
        );
        assert!(parse("cpu  1 2 3 x 5 6 7 8").is_none());
    }

    #[test]
    fn this_machine_has_counters() {
        // Linux always has /proc/stat with a steal field since 2.6.11.
        let a = Counters::read().expect("/proc/stat");
        let b = Counters::read().expect("/proc/stat");
        assert!(
            a.ticks.iter().zip(b.ticks).all(|(x, y)| *x <= y),
            "{a:?} then {b:?}"
        );
    }
}
