//! Residency planning: which layers stay in RAM and which stream from disk every token, and
//! how big the streaming ring is.
//!
//! Resident layers are the first ones in sweep order: while the executor computes them, the
//! prefetcher is already reading the first streamed layers, so the disk never waits for the
//! CPU at the start of a token. The budget counts layer weights only; the globals (embeddings,
//! output), the KV cache and the ring are accounted for separately and reported.

/// Fraction of available memory the default budget may use.
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.75;
/// Extents the prefetcher keeps in flight ahead of the consumer by default.
pub const DEFAULT_PREFETCH_DEPTH: usize = 4;
/// The ring is grown to at least this many bytes of slots when layers are small, so the drive
/// always has enough work queued.
pub const RING_BYTES_MIN: u64 = 64 << 20;
/// Upper bound on ring slots whatever the layer size.
pub const RING_SLOTS_MAX: usize = 64;

/// What the planner needs to know about the model and the machine.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// Bytes each layer occupies once read (its extents' aligned lengths, summed).
    pub layer_bytes: Vec<u64>,
    /// Largest single extent among all layers (a ring slot must hold it).
    pub extent_bytes_max: u64,
    /// Bytes of the non-layer tensors (always resident).
    pub global_bytes: u64,
    /// Bytes of the KV cache.
    pub kv_cache_bytes: u64,
    /// `--ram-budget`, if given: bytes of layer weights allowed to stay resident.
    pub ram_budget: Option<u64>,
    /// Memory the OS reports available (MemAvailable).
    pub mem_available: u64,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `resident[i]`: layer i is read once at load and kept in RAM.
    pub resident: Vec<bool>,
    /// The budget that was applied to layer weights.
    pub budget_bytes: u64,
    /// Bytes of resident layers.
    pub resident_bytes: u64,
    /// Bytes streamed from disk per token.
    pub streamed_bytes_per_token: u64,
    /// Ring slots (0 when nothing streams) and the size of each.
    pub ring_slots: usize,
    pub slot_bytes: u64,
    /// Prefetch depth (extents read ahead of the consumer).
    pub depth: usize,
}

impl Plan {
    /// Number of resident layers.
    pub fn n_resident(&self) -> usize {
        self.resident.iter().filter(|&&r| r).count()
    }

    /// Number of streamed layers.
    pub fn n_streamed(&self) -> usize {
        self.resident.len() - self.n_resident()
    }
}

/// Decides residency and sizes the ring.
pub fn plan(input: &PlanInput) -> Plan {
    let budget_bytes = input.ram_budget.unwrap_or_else(|| default_budget(input));
    let mut resident = vec![false; input.layer_bytes.len()];
    let mut used = 0u64;
    for (r, &b) in resident.iter_mut().zip(&input.layer_bytes) {
        match used.checked_add(b) {
            Some(total) if total <= budget_bytes => {
                *r = true;
                used = total;
            }
            _ => break,
        }
    }
    let streamed: u64 = input
        .layer_bytes
        .iter()
        .zip(&resident)
        .filter(|(_, &r)| !r)
        .map(|(&b, _)| b)
        .sum();
    let n_streamed = resident.iter().filter(|&&r| !r).count();
    let (ring_slots, depth) = if n_streamed == 0 {
        (0, 0)
    } else {
        let slot = input.extent_bytes_max.max(1);
        let by_bytes = RING_BYTES_MIN.div_ceil(slot) as usize;
        // One slot is held by the consumer while `depth` are read ahead; more slots than
        // streamed layers would only hold a second copy of the same layer.
        let slots = by_bytes
            .clamp(DEFAULT_PREFETCH_DEPTH + 1, RING_SLOTS_MAX)
            .min(n_streamed.max(2));
        (slots, slots - 1)
    };
    Plan {
        resident,
        budget_bytes,
        resident_bytes: used,
        streamed_bytes_per_token: streamed,
        ring_slots,
        slot_bytes: if ring_slots == 0 {
            0
        } else {
            input.extent_bytes_max
        },
        depth,
    }
}

/// 75% of available memory, less the KV cache, the globals and a worst-case ring.
fn default_budget(input: &PlanInput) -> u64 {
    let usable = (input.mem_available as f64 * DEFAULT_BUDGET_FRACTION) as u64;
    let ring = (input.extent_bytes_max * (DEFAULT_PREFETCH_DEPTH as u64 + 1)).max(RING_BYTES_MIN);
    usable
        .saturating_sub(input.kv_cache_bytes)
        .saturating_sub(input.global_bytes)
        .saturating_sub(ring)
}

/// MemAvailable from /proc/meminfo, in bytes; `None` if it cannot be read.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(budget: Option<u64>) -> PlanInput {
        PlanInput {
            layer_bytes: vec![100 << 20; 10],
            extent_bytes_max: 100 << 20,
            global_bytes: 50 << 20,
            kv_cache_bytes: 10 << 20,
            ram_budget: budget,
            mem_available: 4 << 30,
        }
    }

    #[test]
    fn zero_budget_streams_everything() {
        let p = plan(&input(Some(0)));
        assert_eq!(p.n_resident(), 0);
        assert_eq!(p.streamed_bytes_per_token, 1000 << 20);
        assert_eq!(p.ring_slots, DEFAULT_PREFETCH_DEPTH + 1);
        assert_eq!(p.depth, DEFAULT_PREFETCH_DEPTH);
        assert_eq!(p.slot_bytes, 100 << 20);
    }

    #[test]
    fn budget_keeps_the_first_layers_that_fit() {
        let p = plan(&input(Some(350 << 20)));
        assert_eq!(
            p.resident,
            [true, true, true, false, false, false, false, false, false, false]
        );
        assert_eq!(p.resident_bytes, 300 << 20);
        assert_eq!(p.streamed_bytes_per_token, 700 << 20);
    }

    #[test]
    fn default_budget_keeps_everything_that_fits_in_memory() {
        let p = plan(&input(None));
        assert_eq!(p.n_streamed(), 0);
        assert_eq!(p.ring_slots, 0);
        let mut small = input(None);
        small.mem_available = 1 << 30;
        let p = plan(&small);
        // 768 MiB usable − 10 KV − 50 globals − 500 ring = 208 MiB: two layers.
        assert_eq!(p.n_resident(), 2);
    }

    #[test]
    fn ring_never_exceeds_the_streamed_layers() {
        let mut i = input(Some(850 << 20));
        i.layer_bytes = vec![2 << 20; 30];
        i.extent_bytes_max = 2 << 20;
        i.ram_budget = Some(27 * (2 << 20));
        let p = plan(&i);
        assert_eq!(p.n_streamed(), 3);
        assert_eq!((p.ring_slots, p.depth), (3, 2));
    }

    #[test]
    fn small_layers_get_a_deeper_ring() {
        let mut i = input(Some(0));
        i.layer_bytes = vec![2 << 20; 30];
        i.extent_bytes_max = 2 << 20;
        let p = plan(&i);
        // 64 MiB of 2 MiB slots would be 32, capped at the 30 streamed layers.
        assert_eq!(p.ring_slots, 30);
        assert_eq!(p.depth, 29);
    }
}
