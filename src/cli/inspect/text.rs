//! The text form of an inspect [`Report`]: sizes in decimal units, to match the GB/s rate.

use std::fmt::Write;

use super::Report;

/// Bytes as `12.3 MB` (decimal units).
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The whole report as lines of text.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut o, r);
    o
}

fn write_all(o: &mut String, r: &Report) -> std::fmt::Result {
    let h = &r.hparams;
    writeln!(
        o,
        "model        {} ({}, header read in {:.1} ms)",
        r.path, r.format, r.open_ms
    )?;
    writeln!(o, "architecture {}", r.arch)?;
    writeln!(
        o,
        "shape        {} layers, n_embd {}, n_ff {}, {} heads / {} kv heads, head_dim {}",
        h.n_layer, h.n_embd, h.n_ff, h.n_head, h.n_head_kv, h.head_dim
    )?;
    writeln!(
        o,
        "vocab        {} tokens, context {}",
        h.n_vocab, h.context_length
    )?;
    let scaling = match &h.rope_scaling {
        Some(s) => format!(", {} scaling x{}", s.kind, s.factor),
        None => String::new(),
    };
    writeln!(
        o,
        "rope         base {}, {} of {} dims rotated, {} pairs{}{}",
        h.rope_freq_base,
        h.n_rot,
        h.head_dim,
        h.rope_style,
        scaling,
        if h.has_rope_freqs {
            ", rope_freqs divisors"
        } else {
            ""
        }
    )?;
    writeln!(
        o,
        "norm, heads  rms eps {:e}, output tied to embeddings: {}, q/k/v biases: {}",
        h.rms_eps,
        yes_no(h.tied_output),
        yes_no(h.qkv_bias)
    )?;
    writeln!(
        o,
        "\ntensor types ({} tensors, {})",
        r.tensor_count,
        size(r.tensor_bytes)
    )?;
    for t in &r.types {
        writeln!(
            o,
            "  {:<7} {:>5} tensors {:>12}",
            t.ty,
            t.count,
            size(t.bytes)
        )?;
    }
    writeln!(
        o,
        "\nlayers (extents rounded to {} B for direct I/O)",
        r.alignment_bytes
    )?;
    writeln!(o, "  layer  extents        bytes      payload  contiguous")?;
    for l in &r.layers {
        writeln!(
            o,
            "  {:>5}  {:>7} {:>12} {:>12}  {}",
            l.layer,
            l.extents,
            size(l.bytes),
            size(l.payload_bytes),
            yes_no(l.contiguous)
        )?;
    }
    writeln!(o, "\nglobal tensors")?;
    for g in &r.globals {
        writeln!(
            o,
            "  {:<26} {:<6} {:<16} {:>12}",
            g.name,
            g.ty,
            format!("{:?}", g.dims),
            size(g.bytes)
        )?;
    }
    if r.unknown_tensors.is_empty() {
        writeln!(o, "\nunknown tensors: none")?;
    } else {
        writeln!(
            o,
            "\nunknown tensors (not read): {}",
            r.unknown_tensors.join(", ")
        )?;
    }
    let s = &r.streaming;
    let assumed = if s.disk_rate_assumed {
        " (assumed NVMe rate)"
    } else {
        ""
    };
    writeln!(
        o,
        "\nstreaming every layer and the LM head (--ram-budget 0): {} per token (head {}) in {} extents (largest {})",
        size(s.bytes_per_token),
        size(s.head_bytes),
        s.extents_per_token,
        size(s.extent_bytes_max)
    )?;
    writeln!(
        o,
        "  at {:.1} GB/s{}: {:.1} ms per token, at most {:.1} tokens/s from disk",
        s.disk_gb_per_s,
        assumed,
        s.seconds_per_token * 1e3,
        s.tokens_per_s_max
    )
}
