//! The CUDA backend: the llama-family forward pass on the device, fed by the same weight store
//! as the CPU backend.
//!
//! Per sweep: the token embeddings are looked up on the host and copied in; then for each layer
//! its weights are on the device already (VRAM tier) or are copied on the copy stream into a
//! slot of the device ring (RAM and disk tiers) while the compute stream runs the previous layer;
//! events order copy(i+1) ∥ compute(i), and a streamed host slot goes back to the prefetcher only
//! after its copy's event has completed ([`Loans`]). The layer mirrors `model::forward`: RMSNorm,
//! Q8_1 quantisation, q/k/v matvecs (+ bias), RoPE, KV store, attention, o, residual add, norm,
//! gate/up, SwiGLU, down, add; prompts of more than one token go through the matmul kernels.
//! The head runs on the device and its logits are copied back for the CPU sampler.
//!
//! Every buffer is sized once per generation ([`DeviceState`]); the decode step's launch shapes
//! are resolved once too, so a decode step allocates nothing.

use std::time::{Duration, Instant};

use cudarc::driver::{CudaEvent, CudaStream};
use sluice_loader::extents::{Extent, LayerExtents};
use sluice_loader::quant::dequantize_row;
use sluice_loader::GgmlType;
use sluice_runtime::{SlabRegistrar, SlotGuard};

use super::clock::LayerClock;
use super::device::{arg, driver, Device, DeviceBuffer, DeviceInfo, Kernel};
use super::error::CudaError;
use super::launch::{self, is_float_type};
use super::layout::{extent_offsets, layer_device_bytes, DeviceRing, DeviceTensor, LayerLayout};
use super::release::Loans;
use crate::engine::executor::{Globals, SweepTimes, EXTENTS_PER_LAYER_MAX};
use crate::engine::layer_times::{layer_times_requested, PipelineTimes, LAYER_TIMES_ENV};
use crate::engine::store::{Held, WeightStore};
use crate::engine::tiers::{assign, Tier, TierInput, TierPlan};
use crate::model::forward::Config;
use crate::model::ops::RopePairs;
use crate::model::weights::Tensor;

/// Bytes of one Q8_1 block (f16 d, f16 s, 32 × i8).
const Q8_1_BLOCK_BYTES: u64 = 36;

/// The device, the model's layout on it and the weights kept there.
pub struct CudaBackend {
    dev: Device,
    info: DeviceInfo,
    layouts: Vec<LayerLayout>,
    /// Device bytes of each layer (payloads, aligned).
    layer_bytes: Vec<u64>,
    tiers: Option<TierPlan>,
    /// VRAM-tier layers, uploaded on the first sweep.
    vram: Vec<Option<DeviceBuffer>>,
    ring: Option<DeviceRing>,
    ring_bufs: Vec<DeviceBuffer>,
    copy_done: Vec<CudaEvent>,
    compute_done: Vec<CudaEvent>,
    /// Copies issued into the ring so far.
    copy_seq: u64,
    /// Output norm and LM head, uploaded at the first generation.
    head: Option<Head>,
    /// Per-layer timing events and sums, only when `SLUICE_LAYER_TIMES=1`.
    clock: Option<LayerClock>,
}

struct Head {
    norm: DeviceBuffer,
    out: DeviceBuffer,
    kernel: MatKernel,
}

impl CudaBackend {
    /// Opens the device, loads the kernels and checks that every layer can run on it.
    pub fn new(extents: &LayerExtents, cfg: &Config) -> Result<CudaBackend, CudaError> {
        let info = super::device::probe()?;
        if cfg.interleave_qk {
            return Err(CudaError::Unsupported(
                "HF llama weights (half-split q/k rows) have no device permutation yet".into(),
            ));
        }
        let mut layouts = Vec::with_capacity(extents.layers.len());
        for (i, l) in extents.layers.iter().enumerate() {
            let lay = LayerLayout::new(i, l)?;
            for m in lay.matrices() {
                launch::matvec(m.ty, m.n_rows, m.row_elems, 1)?;
                launch::matmul(m.ty, m.n_rows, m.row_elems, 1)?;
            }
            layouts.push(lay);
        }
        launch::attention(
            cfg.n_head as u32,
            cfg.n_head_kv as u32,
            cfg.head_dim as u32,
            1,
        )?;
        launch::rope(
            cfg.n_head as u32,
            cfg.head_dim as u32,
            cfg.n_rot as u32,
            1,
            false,
        )?;
        let dev = Device::open(info.ordinal)?;
        let clock = if layer_times_requested() {
            Some(LayerClock::new(&dev, layouts.len())?)
        } else {
            None
        };
        let layer_bytes = extents
            .layers
            .iter()
            .map(|l| layer_device_bytes(l))
            .collect();
        Ok(CudaBackend {
            vram: (0..layouts.len()).map(|_| None).collect(),
            dev,
            info,
            layouts,
            layer_bytes,
            tiers: None,
            ring: None,
            ring_bufs: Vec::new(),
            copy_done: Vec::new(),
            compute_done: Vec::new(),
            copy_seq: 0,
            head: None,
            clock,
        })
    }

    /// Turns per-layer timing on (as `SLUICE_LAYER_TIMES=1` does): events created once here.
    pub fn time_layers(&mut self) -> Result<(), CudaError> {
        if self.clock.is_none() {
            self.clock = Some(LayerClock::new(&self.dev, self.layouts.len())?);
        }
        Ok(())
    }

    /// Per-layer read, copy, compute and stall sums, when layer timing is on.
    pub fn layer_times(&self) -> Option<&PipelineTimes> {
        self.clock.as_ref().map(|c| &c.times)
    }

    /// The device in use.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// A registrar page-locking host ring slabs for this device.
    pub fn registrar(&self) -> std::sync::Arc<dyn SlabRegistrar> {
        self.dev.registrar()
    }

    /// Device bytes of each layer.
    pub fn layer_bytes(&self) -> &[u64] {
        &self.layer_bytes
    }

    /// Plans the three tiers for this device's free memory and allocates the device ring.
    pub fn plan_tiers(
        &mut self,
        cfg: &Config,
        n_ctx: usize,
        global_bytes: u64,
        vram_budget: Option<u64>,
        ram_budget: u64,
    ) -> Result<&TierPlan, CudaError> {
        let (free, _) = self.dev.mem_info()?;
        let fixed = DeviceState::bytes_for(cfg, crate::engine::session::PREFILL_BATCH_MAX, n_ctx)
            + global_bytes;
        let plan = assign(&TierInput {
            layer_bytes: self.layer_bytes.clone(),
            vram_budget,
            vram_free_bytes: free,
            device_fixed_bytes: fixed,
            ram_budget,
        });
        self.ring_bufs.clear();
        self.copy_done.clear();
        self.compute_done.clear();
        self.ring = None;
        if plan.device_ring_slots > 0 {
            for _ in 0..plan.device_ring_slots {
                self.ring_bufs
                    .push(self.dev.alloc(plan.device_slot_bytes as usize)?);
                self.copy_done.push(self.dev.event()?);
                self.compute_done.push(self.dev.event()?);
            }
            self.ring = Some(DeviceRing::new(plan.device_ring_slots));
        }
        Ok(self.tiers.insert(plan))
    }

    /// The tier plan, once [`plan_tiers`](Self::plan_tiers) ran.
    pub fn tiers(&self) -> Option<&TierPlan> {
        self.tiers.as_ref()
    }

    /// Buffers for a generation of batches up to `batch_max` over `n_ctx` positions; uploads
    /// the head on first use.
    pub fn start(
        &mut self,
        cfg: &Config,
        globals: &Globals<'_>,
        batch_max: usize,
        n_ctx: usize,
    ) -> Result<DeviceState, CudaError> {
        if self.head.is_none() {
            let norm = &globals.output_norm;
            let out = globals.output.as_ref().ok_or_else(|| {
                CudaError::Unsupported(
                    "the LM head is not in host memory to upload (the planner streams it)".into(),
                )
            })?;
            if norm.ty != GgmlType::F32 {
                return Err(CudaError::Unsupported(format!(
                    "the output norm is {}, not f32",
                    norm.ty
                )));
            }
            let t = DeviceTensor {
                ty: out.ty,
                row_elems: out.row_elems as u64,
                n_rows: out.n_rows as u64,
                offset: 0,
                bytes: out.bytes.len() as u64,
            };
            let head = Head {
                norm: self.upload(norm.bytes)?,
                out: self.upload(out.bytes)?,
                kernel: MatKernel::new(&self.dev, &t, 1)?,
            };
            self.head = Some(head);
        }
        DeviceState::new(&self.dev, self, cfg, batch_max, n_ctx)
    }

    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer, CudaError> {
        let buf = self.dev.alloc(bytes.len())?;
        buf.copy_in(&self.dev.copy, 0, bytes)?;
        self.dev
            .copy
            .synchronize()
            .map_err(driver("cuStreamSynchronize"))?;
        Ok(buf)
    }

    /// Runs `tokens` at positions `pos0..` through every layer and the head; the last token's
    /// logits land in `logits`.
    #[allow(clippy::too_many_arguments)]
    pub fn sweep<'s>(
        &mut self,
        cfg: &Config,
        extents: &LayerExtents,
        store: &'s WeightStore,
        held: &Held<'_>,
        token_embd: &Tensor<'_>,
        tokens: &[u32],
        pos0: usize,
        st: &mut DeviceState,
        loans: &mut Loans<SlotGuard<'s>>,
        logits: &mut [f32],
        times: &mut SweepTimes,
    ) -> Result<(), CudaError> {
        let started = Instant::now();
        let mut io_wait = Duration::ZERO;
        let n = tokens.len();
        assert!(n >= 1 && n <= st.batch_max, "batch of {n} tokens");
        if self.tiers.is_none() {
            return Err(CudaError::Unsupported("tiers were not planned".into()));
        }
        st.embed(&self.dev, cfg, token_embd, tokens, pos0)?;
        if n > 1 || st.decode.is_none() {
            let k = StepKernels::new(&self.dev, cfg, &self.layouts, n as u32)?;
            if n == 1 {
                st.decode = Some(k);
            } else {
                st.prefill = Some(k);
            }
        }
        let n_layer = self.layouts.len();
        if let Some(c) = self.clock.as_mut() {
            c.begin_sweep();
        }
        let mut cursor = 0usize;
        let mut pending = self.stage(0, extents, held, store, &mut cursor, loans, &mut io_wait)?;
        for layer in 0..n_layer {
            self.compute_layer(cfg, layer, pending, st, n)?;
            if layer + 1 < n_layer {
                pending = self.stage(
                    layer + 1,
                    extents,
                    held,
                    store,
                    &mut cursor,
                    loans,
                    &mut io_wait,
                )?;
            }
            self.release_done(loans)?;
        }
        self.run_head(cfg, st, n, logits)?;
        if let Some(c) = self.clock.as_mut() {
            c.end_sweep(n)?;
        }
        let (ring, copy_done) = (self.ring, &self.copy_done);
        loans.drain(|seq| {
            let slot = ring.map_or(0, |r| r.slot(seq));
            copy_done[slot]
                .synchronize()
                .map_err(driver("cuEventSynchronize"))
        })?;
        times.io_wait += io_wait;
        times.compute += started.elapsed().saturating_sub(io_wait);
        Ok(())
    }

    /// Gets layer `layer`'s weights moving to the device: nothing for a VRAM layer (uploaded
    /// once), a copy into the ring for RAM and disk layers. Returns the copy's sequence number.
    /// `cursor` walks the held (host-resident) extents in sweep order.
    #[allow(clippy::too_many_arguments)]
    fn stage<'s>(
        &mut self,
        layer: usize,
        extents: &LayerExtents,
        held: &Held<'_>,
        store: &'s WeightStore,
        cursor: &mut usize,
        loans: &mut Loans<SlotGuard<'s>>,
        io_wait: &mut Duration,
    ) -> Result<Option<u64>, CudaError> {
        let ext = &extents.layers[layer];
        let k = ext.len();
        let mut payloads: [&[u8]; EXTENTS_PER_LAYER_MAX] = [&[]; EXTENTS_PER_LAYER_MAX];
        let tier = self.tier(layer);
        if tier != Tier::Disk {
            let slots = held.layers.get(*cursor..*cursor + k).ok_or_else(|| {
                CudaError::Unsupported(format!("layer {layer} is not among the held layers"))
            })?;
            *cursor += k;
            for (p, g) in payloads.iter_mut().zip(slots) {
                *p = g.bytes();
            }
            if tier == Tier::Vram {
                if self.vram[layer].is_none() {
                    let buf = self.dev.alloc(self.layer_bytes[layer] as usize)?;
                    copy_payloads(&self.dev, &buf, ext, &payloads[..k])?;
                    self.dev
                        .copy
                        .synchronize()
                        .map_err(driver("cuStreamSynchronize"))?;
                    self.vram[layer] = Some(buf);
                }
                return Ok(None);
            }
            return self.issue_copy(layer, ext, &payloads[..k]).map(Some);
        }
        let Some(streamer) = store.streamer.as_ref() else {
            unreachable!("a disk-tier layer implies a streamer")
        };
        // Keep enough host slots free for the prefetcher to hand out this layer's extents.
        let capacity = streamer.reader().ring().slot_count();
        let (ring, copy_done) = (self.ring, &self.copy_done);
        let room_started = Instant::now();
        if loans.len() + k > capacity {
            loans.make_room(k, |seq| {
                let slot = ring.map_or(0, |r| r.slot(seq));
                copy_done[slot]
                    .synchronize()
                    .map_err(driver("cuEventSynchronize"))
            })?;
        }
        let room_wait = room_started.elapsed();
        let mut guards: [Option<SlotGuard<'s>>; EXTENTS_PER_LAYER_MAX] = Default::default();
        let waited = Instant::now();
        for g in guards.iter_mut().take(k) {
            *g = Some(streamer.next()?);
        }
        let prefetch_wait = waited.elapsed();
        *io_wait += prefetch_wait;
        if let Some(c) = self.clock.as_mut() {
            c.add_stall(layer, room_wait + prefetch_wait);
            for g in guards.iter().flatten() {
                c.add_read(layer, g.read_span().duration());
            }
        }
        for (p, g) in payloads.iter_mut().zip(&guards) {
            if let Some(g) = g {
                *p = g.bytes();
            }
        }
        let seq = self.issue_copy(layer, ext, &payloads[..k])?;
        for g in guards.into_iter().flatten() {
            loans.lend(seq, g);
        }
        Ok(Some(seq))
    }

    fn tier(&self, layer: usize) -> Tier {
        self.tiers.as_ref().map_or(Tier::Disk, |t| t.tiers[layer])
    }

    /// Copies layer `layer`'s payloads into the next ring slot on the copy stream, after the
    /// compute that last read that slot; records the slot's copy event.
    fn issue_copy(
        &mut self,
        layer: usize,
        ext: &[Extent],
        payloads: &[&[u8]],
    ) -> Result<u64, CudaError> {
        let Some(ring) = self.ring else {
            return Err(CudaError::Unsupported("no device ring was planned".into()));
        };
        let seq = self.copy_seq;
        self.copy_seq += 1;
        let slot = ring.slot(seq);
        if ring.previous_occupant(seq).is_some() {
            self.dev
                .copy
                .wait(&self.compute_done[slot])
                .map_err(driver("cuStreamWaitEvent"))?;
        }
        if let Some(c) = &self.clock {
            c.copy_start(layer, &self.dev.copy)?;
        }
        copy_payloads(&self.dev, &self.ring_bufs[slot], ext, payloads)?;
        self.copy_done[slot]
            .record(&self.dev.copy)
            .map_err(driver("cuEventRecord"))?;
        if let Some(c) = self.clock.as_mut() {
            c.copy_end(layer, &self.dev.copy)?;
        }
        Ok(seq)
    }

    /// Returns host slots whose copies have completed to the prefetcher.
    fn release_done(&self, loans: &mut Loans<SlotGuard<'_>>) -> Result<(), CudaError> {
        let (ring, copy_done) = (self.ring, &self.copy_done);
        loans.release_done(|seq| {
            let slot = ring.map_or(0, |r| r.slot(seq));
            copy_done[slot]
                .try_is_complete()
                .map_err(driver("cuEventQuery"))
        })?;
        Ok(())
    }

    /// The device buffer holding layer `layer`'s weights for copy `seq` (None: VRAM tier).
    fn weights(&self, layer: usize, seq: Option<u64>) -> Result<&DeviceBuffer, CudaError> {
        match (seq, self.ring) {
            (Some(seq), Some(ring)) => Ok(&self.ring_bufs[ring.slot(seq)]),
            _ => self.vram[layer]
                .as_ref()
                .ok_or_else(|| CudaError::Unsupported(format!("layer {layer} has no weights"))),
        }
    }

    /// One transformer block over `n` tokens on the compute stream.
    fn compute_layer(
        &self,
        cfg: &Config,
        layer: usize,
        seq: Option<u64>,
        st: &DeviceState,
        n: usize,
    ) -> Result<(), CudaError> {
        let stream = &self.dev.compute;
        if let Some(c) = &self.clock {
            c.wait_start(layer, stream)?;
        }
        if let (Some(seq), Some(ring)) = (seq, self.ring) {
            stream
                .wait(&self.copy_done[ring.slot(seq)])
                .map_err(driver("cuStreamWaitEvent"))?;
        }
        if let Some(c) = &self.clock {
            c.compute_start(layer, stream)?;
        }
        let w = self.weights(layer, seq)?;
        let lay = &self.layouts[layer];
        let ks = st.kernels(n)?;
        let lk = &ks.layers[layer];
        let (e, qd, kvd) = (
            cfg.n_embd,
            cfg.n_head * cfg.head_dim,
            cfg.n_head_kv * cfg.head_dim,
        );
        let nt = n as i32;
        let cache_off = (layer * st.n_ctx * kvd * 2) as u64;
        let (kc, vc) = (st.k_cache.at(cache_off), st.v_cache.at(cache_off));
        let (x, xb, q, k, v) = (st.x.at(0), st.xb.at(0), st.q.at(0), st.k.at(0), st.v.at(0));
        let (att, proj, gate, up, pos) = (
            st.att.at(0),
            st.proj.at(0),
            st.gate.at(0),
            st.up.at(0),
            st.pos.at(0),
        );

        // Attention: xb = norm(x); q, k, v = W·xb (+ bias); RoPE; cache k, v; attend.
        ks.rms_norm(stream, x, w.at(lay.attn_norm.offset), xb, e, cfg.rms_eps)?;
        ks.quantize(stream, &ks.quant_embd, xb, st.y.at(0), e)?;
        for (m, mk, out, bias, dim, bk) in [
            (&lay.q, &lk.q, q, &lay.q_bias, qd, &ks.bias[0]),
            (&lay.k, &lk.k, k, &lay.k_bias, kvd, &ks.bias[1]),
            (&lay.v, &lk.v, v, &lay.v_bias, kvd, &ks.bias[1]),
        ] {
            mk.run(stream, w.at(m.offset), xb, st.y.at(0), out, nt)?;
            if let Some(b) = bias {
                ks.add_rows(
                    stream,
                    bk,
                    out,
                    w.at(b.offset),
                    (n * dim) as i64,
                    dim as i32,
                )?;
            }
        }
        ks.rope(stream, &ks.rope_q, q, pos, cfg, cfg.n_head)?;
        ks.rope(stream, &ks.rope_k, k, pos, cfg, cfg.n_head_kv)?;
        let kvd_i = kvd as i32;
        // SAFETY: kv_store_f16(k, v, k_cache, v_cache, pos, kv_dim): k, v hold n × kv_dim f32,
        // the caches n_ctx × kv_dim f16 for this layer, pos n i32 (all < n_ctx, checked by the
        // session against the context).
        unsafe {
            ks.kv_store.launch(
                stream,
                &mut [arg(&k), arg(&v), arg(&kc), arg(&vc), arg(&pos), arg(&kvd_i)],
            )?
        };
        let (nh, nkv, hd) = (cfg.n_head as i32, cfg.n_head_kv as i32, cfg.head_dim as i32);
        let scale = 1.0 / (cfg.head_dim as f32).sqrt();
        // SAFETY: attn_decode_f16kv(q, k_cache, v_cache, out, pos, n_head, n_head_kv, head_dim,
        // scale): q and out hold n × q_dim f32, the caches this layer's n_ctx × kv_dim f16.
        unsafe {
            ks.attention.launch(
                stream,
                &mut [
                    arg(&q),
                    arg(&kc),
                    arg(&vc),
                    arg(&att),
                    arg(&pos),
                    arg(&nh),
                    arg(&nkv),
                    arg(&hd),
                    arg(&scale),
                ],
            )?
        };
        ks.quantize(stream, &ks.quant_q, att, st.y.at(0), qd)?;
        lk.o.run(stream, w.at(lay.o.offset), att, st.y.at(0), proj, nt)?;
        ks.add(stream, x, proj, (n * e) as i64)?;

        // Feed-forward: x += W_down · (silu(W_gate·m) ⊙ W_up·m), m = norm(x).
        ks.rms_norm(stream, x, w.at(lay.ffn_norm.offset), xb, e, cfg.rms_eps)?;
        ks.quantize(stream, &ks.quant_embd, xb, st.y.at(0), e)?;
        lk.gate
            .run(stream, w.at(lay.gate.offset), xb, st.y.at(0), gate, nt)?;
        lk.up
            .run(stream, w.at(lay.up.offset), xb, st.y.at(0), up, nt)?;
        let nf = (n * cfg.n_ff) as i64;
        // SAFETY: swiglu_f32(gate, up, out, n): all three hold n_tok × n_ff f32; out may equal
        // gate (kernels/elementwise.cu).
        unsafe {
            ks.swiglu
                .launch(stream, &mut [arg(&gate), arg(&up), arg(&gate), arg(&nf)])?
        };
        ks.quantize(stream, &ks.quant_ff, gate, st.y.at(0), cfg.n_ff)?;
        lk.down
            .run(stream, w.at(lay.down.offset), gate, st.y.at(0), proj, nt)?;
        ks.add(stream, x, proj, (n * e) as i64)?;
        if let Some(c) = &self.clock {
            c.compute_end(layer, stream)?;
        }
        if let (Some(seq), Some(ring)) = (seq, self.ring) {
            self.compute_done[ring.slot(seq)]
                .record(stream)
                .map_err(driver("cuEventRecord"))?;
        }
        Ok(())
    }

    /// Final norm and LM head for the last of `n` tokens; copies the logits back.
    fn run_head(
        &self,
        cfg: &Config,
        st: &DeviceState,
        n: usize,
        logits: &mut [f32],
    ) -> Result<(), CudaError> {
        let stream = &self.dev.compute;
        let Some(head) = &self.head else {
            return Err(CudaError::Unsupported("the head was not uploaded".into()));
        };
        let e = cfg.n_embd;
        let last = st.x.at(((n - 1) * e * 4) as u64);
        let ks = st.kernels(1)?;
        ks.rms_norm_one(stream, last, head.norm.at(0), st.xb.at(0), e, cfg.rms_eps)?;
        ks.quantize(stream, &ks.quant_embd, st.xb.at(0), st.y.at(0), e)?;
        head.kernel.run(
            stream,
            head.out.at(0),
            st.xb.at(0),
            st.y.at(0),
            st.logits.at(0),
            1,
        )?;
        st.logits.copy_out(stream, 0, &mut logits[..cfg.n_vocab])
    }
}

/// Copies a layer's payloads to where [`extent_offsets`] places them, on the copy stream.
fn copy_payloads(
    dev: &Device,
    buf: &DeviceBuffer,
    ext: &[Extent],
    payloads: &[&[u8]],
) -> Result<(), CudaError> {
    let (offsets, _) = extent_offsets(ext);
    for (&off, p) in offsets.iter().zip(payloads) {
        buf.copy_in(&dev.copy, off, p)?;
    }
    Ok(())
}

/// A matrix product resolved for a token count: a matvec (one token, Q8_1 or f32 activations)
/// or a matmul (a prompt batch, f32 activations).
struct MatKernel {
    kernel: Kernel,
    /// Takes the Q8_1 activations (`y`) rather than the f32 ones.
    q8: bool,
    /// The prefill matmul, which takes `n_tok` as a last argument.
    matmul: bool,
    n_rows: i32,
    row_elems: i32,
}

impl MatKernel {
    fn new(dev: &Device, t: &DeviceTensor, n: u32) -> Result<MatKernel, CudaError> {
        let (rows, cols) = (t.n_rows, t.row_elems);
        let (l, q8, matmul) = if n == 1 {
            (
                launch::matvec(t.ty, rows, cols, 1)?,
                !is_float_type(t.ty),
                false,
            )
        } else {
            (launch::matmul(t.ty, rows, cols, n)?, false, true)
        };
        Ok(MatKernel {
            kernel: dev.kernel(&l)?,
            q8,
            matmul,
            n_rows: rows as i32,
            row_elems: cols as i32,
        })
    }

    /// `out = W · input` for `n_tok` tokens (`y`: `input` quantised to Q8_1, for the q8 path).
    fn run(
        &self,
        stream: &CudaStream,
        w: u64,
        x: u64,
        y: u64,
        out: u64,
        n_tok: i32,
    ) -> Result<(), CudaError> {
        let act = if self.q8 { y } else { x };
        let (rows, cols) = (self.n_rows, self.row_elems);
        // SAFETY: matvec_<t>_{q8_1,f32}(w, y|x, out, n_rows, row_elems) and
        // matmul_<t>_f32(w, x, out, n_rows, row_elems, n_tok): w holds n_rows rows of the
        // layer's weight, the activations n_tok rows of row_elems, out n_tok × n_rows f32
        // (the state's buffers are sized for the widest of each).
        unsafe {
            if self.matmul {
                self.kernel.launch(
                    stream,
                    &mut [
                        arg(&w),
                        arg(&act),
                        arg(&out),
                        arg(&rows),
                        arg(&cols),
                        arg(&n_tok),
                    ],
                )
            } else {
                self.kernel.launch(
                    stream,
                    &mut [arg(&w), arg(&act), arg(&out), arg(&rows), arg(&cols)],
                )
            }
        }
    }
}

/// One layer's matrix products for a token count.
struct LayerKernels {
    q: MatKernel,
    k: MatKernel,
    v: MatKernel,
    o: MatKernel,
    gate: MatKernel,
    up: MatKernel,
    down: MatKernel,
}

/// Every launch of a sweep of `n` tokens, resolved once.
pub struct StepKernels {
    n: u32,
    rms: Kernel,
    rms_one: Kernel,
    /// Quantisers for rows of n_embd, q_dim and n_ff (None on the matmul path).
    quant_embd: Option<Kernel>,
    quant_q: Option<Kernel>,
    quant_ff: Option<Kernel>,
    rope_q: Kernel,
    rope_k: Kernel,
    kv_store: Kernel,
    attention: Kernel,
    swiglu: Kernel,
    add: Kernel,
    bias: [Kernel; 2],
    layers: Vec<LayerKernels>,
}

impl StepKernels {
    fn new(
        dev: &Device,
        cfg: &Config,
        layouts: &[LayerLayout],
        n: u32,
    ) -> Result<StepKernels, CudaError> {
        let (e, qd, kvd) = (
            cfg.n_embd as u64,
            (cfg.n_head * cfg.head_dim) as u64,
            (cfg.n_head_kv * cfg.head_dim) as u64,
        );
        let k = |l: launch::Launch| dev.kernel(&l);
        let quant = |w: u64| -> Result<Option<Kernel>, CudaError> {
            if n == 1 {
                Ok(Some(k(launch::quantize_q8_1(w, 1)?)?))
            } else {
                Ok(None)
            }
        };
        let neox = cfg.rope_pairs == RopePairs::HalfSplit;
        let (hd, rot) = (cfg.head_dim as u32, cfg.n_rot as u32);
        let mut layers = Vec::with_capacity(layouts.len());
        for lay in layouts {
            layers.push(LayerKernels {
                q: MatKernel::new(dev, &lay.q, n)?,
                k: MatKernel::new(dev, &lay.k, n)?,
                v: MatKernel::new(dev, &lay.v, n)?,
                o: MatKernel::new(dev, &lay.o, n)?,
                gate: MatKernel::new(dev, &lay.gate, n)?,
                up: MatKernel::new(dev, &lay.up, n)?,
                down: MatKernel::new(dev, &lay.down, n)?,
            });
        }
        let n64 = u64::from(n);
        Ok(StepKernels {
            n,
            rms: k(launch::rms_norm(e, n)?)?,
            rms_one: k(launch::rms_norm(e, 1)?)?,
            quant_embd: quant(e)?,
            quant_q: quant(qd)?,
            quant_ff: quant(cfg.n_ff as u64)?,
            rope_q: k(launch::rope(cfg.n_head as u32, hd, rot, n, neox)?)?,
            rope_k: k(launch::rope(cfg.n_head_kv as u32, hd, rot, n, neox)?)?,
            kv_store: k(launch::kv_store(kvd as u32, n)?)?,
            attention: k(launch::attention(
                cfg.n_head as u32,
                cfg.n_head_kv as u32,
                hd,
                n,
            )?)?,
            swiglu: k(launch::elementwise("swiglu_f32", n64 * cfg.n_ff as u64)?)?,
            add: k(launch::elementwise("add_f32", n64 * e)?)?,
            bias: [
                k(launch::elementwise("add_rows_f32", n64 * qd)?)?,
                k(launch::elementwise("add_rows_f32", n64 * kvd)?)?,
            ],
            layers,
        })
    }

    /// `out = rmsnorm(x) ⊙ w` for the step's tokens.
    fn rms_norm(
        &self,
        s: &CudaStream,
        x: u64,
        w: u64,
        out: u64,
        n: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        norm(&self.rms, s, x, w, out, n, eps)
    }

    /// The same for one row.
    fn rms_norm_one(
        &self,
        s: &CudaStream,
        x: u64,
        w: u64,
        out: u64,
        n: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        norm(&self.rms_one, s, x, w, out, n, eps)
    }

    /// Quantises the step's rows of `width` activations to Q8_1 (nothing on the matmul path).
    fn quantize(
        &self,
        s: &CudaStream,
        k: &Option<Kernel>,
        x: u64,
        y: u64,
        width: usize,
    ) -> Result<(), CudaError> {
        let Some(k) = k else { return Ok(()) };
        let w = width as i32;
        // SAFETY: quantize_q8_1_f32(x, y, row_elems): x holds n_tok rows of `width` f32, y
        // n_tok × width/32 Q8_1 blocks (sized for the widest row).
        unsafe { k.launch(s, &mut [arg(&x), arg(&y), arg(&w)]) }
    }

    /// RoPE in place on the step's rows of `x` at positions `pos`.
    fn rope(
        &self,
        s: &CudaStream,
        k: &Kernel,
        x: u64,
        pos: u64,
        cfg: &Config,
        n_heads: usize,
    ) -> Result<(), CudaError> {
        let (nh, hd, rot) = (n_heads as i32, cfg.head_dim as i32, cfg.n_rot as i32);
        let theta_scale = cfg.rope_freq_base.powf(-2.0 / cfg.n_rot as f32);
        let freq_factors = 0u64;
        // SAFETY: rope_*_f32(x, pos, n_heads, head_dim, n_rot, theta_scale, freq_factors): x
        // holds n_tok × n_heads × head_dim f32, pos n_tok i32; a null factor table means none.
        unsafe {
            k.launch(
                s,
                &mut [
                    arg(&x),
                    arg(&pos),
                    arg(&nh),
                    arg(&hd),
                    arg(&rot),
                    arg(&theta_scale),
                    arg(&freq_factors),
                ],
            )
        }
    }

    /// `x[i] += b[i % row]` over `n` elements.
    fn add_rows(
        &self,
        s: &CudaStream,
        k: &Kernel,
        x: u64,
        b: u64,
        n: i64,
        row: i32,
    ) -> Result<(), CudaError> {
        // SAFETY: add_rows_f32(x, b, n, row): x holds n f32, b `row` f32.
        unsafe { k.launch(s, &mut [arg(&x), arg(&b), arg(&n), arg(&row)]) }
    }

    /// `x += y` over `n` elements.
    fn add(&self, s: &CudaStream, x: u64, y: u64, n: i64) -> Result<(), CudaError> {
        // SAFETY: add_f32(x, y, n): both hold n f32.
        unsafe { self.add.launch(s, &mut [arg(&x), arg(&y), arg(&n)]) }
    }
}

fn norm(
    k: &Kernel,
    s: &CudaStream,
    x: u64,
    w: u64,
    out: u64,
    n: usize,
    eps: f32,
) -> Result<(), CudaError> {
    let n = n as i32;
    // SAFETY: rms_norm_f32(x, w, out, n, eps): x and out hold n_tok rows of n f32, w n f32.
    unsafe { k.launch(s, &mut [arg(&x), arg(&w), arg(&out), arg(&n), arg(&eps)]) }
}

/// Every device buffer a generation uses, sized once.
pub struct DeviceState {
    batch_max: usize,
    n_ctx: usize,
    x: DeviceBuffer,
    xb: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    att: DeviceBuffer,
    proj: DeviceBuffer,
    gate: DeviceBuffer,
    up: DeviceBuffer,
    /// Q8_1 activations of the widest row.
    y: DeviceBuffer,
    pos: DeviceBuffer,
    logits: DeviceBuffer,
    /// `[n_layer][n_ctx][kv_dim]` f16 each.
    k_cache: DeviceBuffer,
    v_cache: DeviceBuffer,
    /// Host staging for the embeddings and positions of a batch.
    x_host: Vec<f32>,
    pos_host: Vec<i32>,
    decode: Option<StepKernels>,
    prefill: Option<StepKernels>,
}

/// Sizes (bytes) of the state's buffers, in field order.
fn state_sizes(cfg: &Config, b: usize, n_ctx: usize) -> [u64; 14] {
    let (e, qd, kvd, ff) = (
        cfg.n_embd,
        cfg.n_head * cfg.head_dim,
        cfg.n_head_kv * cfg.head_dim,
        cfg.n_ff,
    );
    let widest = e.max(qd).max(ff) as u64;
    let f = |n: usize| (b * n * 4) as u64;
    let cache = (cfg.n_layer * n_ctx * kvd * 2) as u64;
    [
        f(e),
        f(e.max(qd)),
        f(qd),
        f(kvd),
        f(kvd),
        f(qd),
        f(e),
        f(ff),
        f(ff),
        b as u64 * widest / 32 * Q8_1_BLOCK_BYTES,
        (b * 4) as u64,
        (cfg.n_vocab * 4) as u64,
        cache,
        cache,
    ]
}

impl DeviceState {
    /// Device bytes of a state for batches of `batch_max` over `n_ctx` positions.
    pub fn bytes_for(cfg: &Config, batch_max: usize, n_ctx: usize) -> u64 {
        state_sizes(cfg, batch_max.max(1), n_ctx).iter().sum()
    }

    fn new(
        dev: &Device,
        backend: &CudaBackend,
        cfg: &Config,
        batch_max: usize,
        n_ctx: usize,
    ) -> Result<DeviceState, CudaError> {
        let b = batch_max.max(1);
        let sizes = state_sizes(cfg, b, n_ctx);
        let mut bufs = Vec::with_capacity(sizes.len());
        for &bytes in &sizes {
            bufs.push(dev.alloc(bytes as usize)?);
        }
        let mut it = bufs.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| CudaError::Unsupported("state buffer count".into()))
        };
        let st = DeviceState {
            batch_max: b,
            n_ctx,
            x: next()?,
            xb: next()?,
            q: next()?,
            k: next()?,
            v: next()?,
            att: next()?,
            proj: next()?,
            gate: next()?,
            up: next()?,
            y: next()?,
            pos: next()?,
            logits: next()?,
            k_cache: next()?,
            v_cache: next()?,
            x_host: vec![0.0; b * cfg.n_embd],
            pos_host: vec![0; b],
            decode: Some(StepKernels::new(dev, cfg, &backend.layouts, 1)?),
            prefill: None,
        };
        // Cache positions not yet written are never read (attention stops at pos), but zeroed
        // memory keeps a bug from reading NaNs.
        st.k_cache.zero(&dev.compute)?;
        st.v_cache.zero(&dev.compute)?;
        Ok(st)
    }

    /// The launches for a step of `n` tokens.
    fn kernels(&self, n: usize) -> Result<&StepKernels, CudaError> {
        let k = if n == 1 { &self.decode } else { &self.prefill };
        k.as_ref()
            .filter(|k| k.n as usize == n)
            .ok_or_else(|| CudaError::Unsupported(format!("no launches resolved for {n} tokens")))
    }

    /// Looks up the embeddings of `tokens` on the host and copies them and their positions in.
    fn embed(
        &mut self,
        dev: &Device,
        cfg: &Config,
        token_embd: &Tensor<'_>,
        tokens: &[u32],
        pos0: usize,
    ) -> Result<(), CudaError> {
        let e = cfg.n_embd;
        let row_bytes = token_embd.bytes.len() / token_embd.n_rows.max(1);
        for (t, &tok) in tokens.iter().enumerate() {
            let id = tok as usize;
            if id >= token_embd.n_rows {
                return Err(CudaError::Unsupported(format!(
                    "token id {tok} is outside the vocabulary of {} tokens",
                    token_embd.n_rows
                )));
            }
            let row = &token_embd.bytes[id * row_bytes..(id + 1) * row_bytes];
            dequantize_row(token_embd.ty, row, &mut self.x_host[t * e..(t + 1) * e])
                .map_err(|err| CudaError::Unsupported(err.to_string()))?;
            self.pos_host[t] = (pos0 + t) as i32;
        }
        if pos0 + tokens.len() > self.n_ctx {
            return Err(CudaError::Unsupported(format!(
                "position {} is past the device KV cache of {}",
                pos0 + tokens.len(),
                self.n_ctx
            )));
        }
        let n = tokens.len();
        // Pageable sources: the driver stages them before returning, so reuse is safe.
        self.x.copy_in(&dev.compute, 0, &self.x_host[..n * e])?;
        self.pos.copy_in(&dev.compute, 0, &self.pos_host[..n])
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // Buffers are freed synchronously; make sure no stream still uses them.
        let _ = self.dev.copy.synchronize();
        let _ = self.dev.compute.synchronize();
        // Asked for with the environment variable, so reported where a person sees it.
        let asked = layer_times_requested();
        if let Some(times) = self
            .layer_times()
            .filter(|t| asked && t.decode.sweeps() > 0)
        {
            eprintln!(
                "sluice: per-layer device times ({LAYER_TIMES_ENV}=1, {})\n{times}",
                self.info.name
            );
        }
    }
}
