//! The KV caches of many live sequences: one slab (a [`KvCache`] sized for that sequence's
//! prompt and token limit) per sequence, in numbered slots, allocated when it joins and freed
//! when it leaves, within a byte budget. A fresh slab is zeroed, which attention's padded,
//! masked positions rely on (a masked probability times a zero is zero).

use super::kv_cache::KvCache;

/// Where the forward pass finds the cache of a sequence, by slot.
pub trait KvCaches: Sync {
    /// The cache in `slot`.
    fn cache(&self, slot: usize) -> &KvCache;
    /// The cache in `slot`, to store into.
    fn cache_mut(&mut self, slot: usize) -> &mut KvCache;
}

/// One sequence alone: every slot is its cache.
impl KvCaches for KvCache {
    fn cache(&self, _slot: usize) -> &KvCache {
        self
    }

    fn cache_mut(&mut self, _slot: usize) -> &mut KvCache {
        self
    }
}

/// Why a slab could not be allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabRefused {
    /// Every slot is taken.
    NoSlot,
    /// The slab would take the live slabs past the budget.
    OverBudget { need: u64, free: u64 },
}

/// Per-sequence KV slabs in numbered slots, within a byte budget.
pub struct KvSlabs {
    n_layer: usize,
    kv_dim: usize,
    slots: Vec<Option<KvCache>>,
    budget_bytes: u64,
    live_bytes: u64,
}

impl KvSlabs {
    /// `n_slots` empty slots for caches of `n_layer` layers of `kv_dim` values per position,
    /// whose live slabs may take at most `budget_bytes`.
    pub fn new(n_layer: usize, kv_dim: usize, n_slots: usize, budget_bytes: u64) -> KvSlabs {
        KvSlabs {
            n_layer,
            kv_dim,
            slots: (0..n_slots).map(|_| None).collect(),
            budget_bytes,
            live_bytes: 0,
        }
    }

    /// Bytes a slab for `n_ctx` positions takes.
    pub fn slab_bytes(&self, n_ctx: usize) -> u64 {
        KvCache::bytes_for(self.n_layer, self.kv_dim, n_ctx)
    }

    /// Allocates a zeroed slab of `n_ctx` positions in a free slot and returns the slot.
    pub fn alloc(&mut self, n_ctx: usize) -> Result<usize, SlabRefused> {
        let need = self.slab_bytes(n_ctx);
        let free = self.budget_bytes.saturating_sub(self.live_bytes);
        if need > free {
            return Err(SlabRefused::OverBudget { need, free });
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(SlabRefused::NoSlot)?;
        self.slots[slot] = Some(KvCache::new(self.n_layer, self.kv_dim, n_ctx));
        self.live_bytes += need;
        Ok(slot)
    }

    /// Frees the slab in `slot` (a no-op for an empty slot).
    pub fn free(&mut self, slot: usize) {
        if let Some(c) = self.slots.get_mut(slot).and_then(Option::take) {
            self.live_bytes -= c.bytes() as u64;
        }
    }

    /// Bytes of the live slabs.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// The budget the live slabs share.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Number of live slabs.
    pub fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

impl KvCaches for KvSlabs {
    fn cache(&self, slot: usize) -> &KvCache {
        match self.slots.get(slot) {
            Some(Some(c)) => c,
            _ => panic!("KV slot {slot} is not live"),
        }
    }

    fn cache_mut(&mut self, slot: usize) -> &mut KvCache {
        match self.slots.get_mut(slot) {
            Some(Some(c)) => c,
            _ => panic!("KV slot {slot} is not live"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slabs_are_budgeted_reused_and_zeroed() {
        let mut s = KvSlabs::new(2, 4, 2, 0);
        let one = s.slab_bytes(32);
        s.budget_bytes = 2 * one;
        let a = s.alloc(32).expect("first slab fits");
        let b = s
            .alloc(20)
            .expect("second slab fits (rounded to 32 positions)");
        assert_ne!(a, b);
        assert_eq!(s.live_bytes(), 2 * one);
        assert_eq!(
            s.alloc(1),
            Err(SlabRefused::OverBudget { need: one, free: 0 })
        );
        s.cache_mut(a).store(1, 3, &[1.0; 4], &[2.0; 4]);
        s.free(a);
        assert_eq!(s.live(), 1);
        let c = s
            .alloc(32)
            .expect("a freed slab's bytes return to the budget");
        assert_eq!(c, a, "the freed slot is reused");
        assert!(s.cache(c).key(1, 3, 0, 4).iter().all(|&b| b == 0), "zeroed");
        s.budget_bytes = u64::MAX;
        assert_eq!(s.alloc(1), Err(SlabRefused::NoSlot));
    }
}
