//! Three-tier residency for a GPU backend: each layer's weights live on the device (VRAM,
//! copied once), in host RAM (read once, copied to the device every token) or on disk (read
//! and copied every token).
//!
//! A pure function of byte counts, so it is tested without a GPU. Tiers are prefixes of the
//! sweep order — VRAM layers first, then RAM layers, then streamed ones — so while the device
//! computes the resident layers at the start of a token, the prefetcher and the copy stream are
//! already moving the first streamed layers. That makes "VRAM + RAM" one prefix of the layers,
//! which is exactly what the CPU planner's `resident` vector describes (see
//! [`TierPlan::host_resident`]).
//!
//! Budgets count layer weights only, as `--ram-budget` does. Without `--vram-budget` the device
//! budget is a fraction of the free device memory less what the device needs besides resident
//! layers: the KV cache, activations, the globals the head uses, and the device ring of layer
//! slots (sized for the largest layer, since any layer may end up streamed).

/// Fraction of the device's free memory the default VRAM budget may use.
pub const DEFAULT_VRAM_FRACTION: f64 = 0.9;
/// Device slots in the ring streamed and RAM layers are copied into: one being computed, one
/// being filled by the copy stream for the next layer.
pub const DEVICE_RING_SLOTS: usize = 2;

/// Where one layer's weights live during a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// On the device, copied once.
    Vram,
    /// In host RAM, copied to the device for every sweep.
    Ram,
    /// Read from disk and copied to the device for every sweep.
    Disk,
}

/// What tier planning needs to know.
#[derive(Clone, Debug)]
pub struct TierInput {
    /// Bytes of each layer's weights (as copied to the device), in sweep order.
    pub layer_bytes: Vec<u64>,
    /// `--vram-budget`: bytes of layer weights allowed on the device; `None` for the default.
    pub vram_budget: Option<u64>,
    /// Free device memory (for the default budget).
    pub vram_free_bytes: u64,
    /// Device bytes needed besides layers: KV cache, activations, globals.
    pub device_fixed_bytes: u64,
    /// Bytes of layer weights allowed to stay in host RAM (the CPU planner's budget).
    pub ram_budget: u64,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierPlan {
    /// Tier of each layer, in sweep order.
    pub tiers: Vec<Tier>,
    /// The VRAM budget applied to layer weights.
    pub vram_budget_bytes: u64,
    /// Bytes of layers kept on the device.
    pub vram_bytes: u64,
    /// Bytes of layers kept in host RAM.
    pub ram_bytes: u64,
    /// Bytes read from disk every sweep.
    pub disk_bytes: u64,
    /// Device ring slots (0 when every layer is in VRAM) and their size: the largest layer
    /// not in VRAM.
    pub device_ring_slots: usize,
    /// Size of each device ring slot.
    pub device_slot_bytes: u64,
}

impl TierPlan {
    /// Number of layers in `tier`.
    pub fn count(&self, tier: Tier) -> usize {
        self.tiers.iter().filter(|&&t| t == tier).count()
    }

    /// The host-resident layers (VRAM and RAM tiers: both are read once into host memory by the
    /// weight store); the rest stream from disk.
    pub fn host_resident(&self) -> Vec<bool> {
        self.tiers.iter().map(|&t| t != Tier::Disk).collect()
    }
}

/// Longest prefix of `bytes` whose sum fits in `budget`; returns (its length, its sum).
fn prefix_within(bytes: &[u64], budget: u64) -> (usize, u64) {
    let mut used = 0u64;
    for (i, &b) in bytes.iter().enumerate() {
        match used.checked_add(b) {
            Some(total) if total <= budget => used = total,
            _ => return (i, used),
        }
    }
    (bytes.len(), used)
}

/// The default VRAM budget: a fraction of free memory less the fixed needs, and less a ring
/// for the largest layer unless every layer then fits without one.
fn default_vram_budget(input: &TierInput) -> u64 {
    let usable = (input.vram_free_bytes as f64 * DEFAULT_VRAM_FRACTION) as u64;
    let usable = usable.saturating_sub(input.device_fixed_bytes);
    let total: u64 = input.layer_bytes.iter().sum();
    if total <= usable {
        return usable;
    }
    let largest = input.layer_bytes.iter().copied().max().unwrap_or(0);
    usable.saturating_sub(largest * DEVICE_RING_SLOTS as u64)
}

/// Assigns every layer a tier.
pub fn assign(input: &TierInput) -> TierPlan {
    let n = input.layer_bytes.len();
    let vram_budget_bytes = input
        .vram_budget
        .unwrap_or_else(|| default_vram_budget(input));
    let (n_vram, vram_bytes) = prefix_within(&input.layer_bytes, vram_budget_bytes);
    let (n_ram, ram_bytes) = prefix_within(&input.layer_bytes[n_vram..], input.ram_budget);
    let mut tiers = vec![Tier::Disk; n];
    tiers[..n_vram].fill(Tier::Vram);
    tiers[n_vram..n_vram + n_ram].fill(Tier::Ram);
    let disk_bytes = input.layer_bytes[n_vram + n_ram..].iter().sum();
    let device_slot_bytes = input.layer_bytes[n_vram..]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    let device_ring_slots = if n_vram == n { 0 } else { DEVICE_RING_SLOTS };
    TierPlan {
        tiers,
        vram_budget_bytes,
        vram_bytes,
        ram_bytes,
        disk_bytes,
        device_ring_slots,
        device_slot_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tier::*;

    const MIB: u64 = 1 << 20;

    fn input(vram: Option<u64>, ram: u64) -> TierInput {
        TierInput {
            layer_bytes: vec![100 * MIB; 6],
            vram_budget: vram,
            vram_free_bytes: 8 << 30,
            device_fixed_bytes: 200 * MIB,
            ram_budget: ram,
        }
    }

    #[test]
    fn budgets_fill_vram_then_ram_then_disk() {
        let p = assign(&input(Some(250 * MIB), 150 * MIB));
        assert_eq!(p.tiers, [Vram, Vram, Ram, Disk, Disk, Disk]);
        assert_eq!(
            (p.vram_bytes, p.ram_bytes, p.disk_bytes),
            (200 * MIB, 100 * MIB, 300 * MIB)
        );
        assert_eq!((p.device_ring_slots, p.device_slot_bytes), (2, 100 * MIB));
        assert_eq!(p.count(Disk), 3);
        assert_eq!(p.host_resident(), [true, true, true, false, false, false]);
    }

    #[test]
    fn zero_budgets_stream_everything() {
        let p = assign(&input(Some(0), 0));
        assert_eq!(p.tiers, [Disk; 6]);
        assert_eq!(p.disk_bytes, 600 * MIB);
        assert_eq!(p.device_ring_slots, DEVICE_RING_SLOTS);
    }

    #[test]
    fn everything_in_vram_needs_no_ring() {
        let p = assign(&input(None, 0));
        assert_eq!(p.tiers, [Vram; 6]);
        assert_eq!((p.device_ring_slots, p.device_slot_bytes), (0, 0));
    }

    #[test]
    fn default_vram_budget_reserves_fixed_bytes_and_a_ring() {
        let mut i = input(None, 1 << 40);
        // 0.9 · 1000 MiB = 900 MiB, less 200 fixed = 700 MiB < 600 MiB of layers? No: fits.
        i.vram_free_bytes = 1000 * MIB;
        assert_eq!(assign(&i).count(Vram), 6);
        // 0.9 · 800 = 720 − 200 = 520 < 600: a 2 × 100 MiB ring comes off, 320 MiB → 3 layers.
        i.vram_free_bytes = 800 * MIB;
        let p = assign(&i);
        assert_eq!(p.vram_budget_bytes, 320 * MIB);
        assert_eq!(p.tiers, [Vram, Vram, Vram, Ram, Ram, Ram]);
        // No free memory at all: nothing on the device, the budget saturates at zero.
        i.vram_free_bytes = 0;
        assert_eq!(assign(&i).count(Vram), 0);
    }

    #[test]
    fn ring_slot_is_the_largest_layer_not_in_vram() {
        let mut i = input(Some(350 * MIB), 0);
        i.layer_bytes = vec![300 * MIB, 50 * MIB, 120 * MIB, 80 * MIB];
        let p = assign(&i);
        assert_eq!(p.tiers, [Vram, Vram, Disk, Disk]);
        assert_eq!(p.device_slot_bytes, 120 * MIB);
        // A layer too large for the budget stops VRAM there, even if later ones would fit.
        i.vram_budget = Some(250 * MIB);
        assert_eq!(assign(&i).tiers, [Disk; 4]);
    }

    #[test]
    fn tiers_match_the_cpu_planners_prefix() {
        // VRAM + RAM is one prefix, the one the CPU planner keeps with budget vram + ram bytes.
        let mut i = input(Some(230 * MIB), 170 * MIB);
        i.layer_bytes = vec![90 * MIB, 90 * MIB, 60 * MIB, 60 * MIB, 60 * MIB, 90 * MIB];
        let p = assign(&i);
        assert_eq!(p.tiers, [Vram, Vram, Ram, Ram, Disk, Disk]);
        let (n, _) = prefix_within(&i.layer_bytes, p.vram_bytes + p.ram_bytes);
        assert_eq!(n, p.count(Vram) + p.count(Ram));
    }
}
