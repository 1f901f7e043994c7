//! LayerExtents on hand-built tensor indexes: numeric and lexicographic layer order, layers
//! interrupted by a foreign tensor or split across shards, alignment rounding and payload math.

use std::path::PathBuf;

use sluice_loader::extents::{ExtentsErrorKind, LayerExtents};
use sluice_loader::roles::TensorRole;
use sluice_loader::{GgmlType, TensorIndex, TensorInfo};

const ALIGN: u64 = 4096;

/// Per-layer GGUF suffixes and byte sizes (not multiples of 32, to exercise padding).
const LAYER: [(&str, u64); 9] = [
    ("attn_k.weight", 1000),
    ("attn_norm.weight", 100),
    ("attn_output.weight", 3000),
    ("attn_q.weight", 3000),
    ("attn_v.weight", 1000),
    ("ffn_down.weight", 5000),
    ("ffn_gate.weight", 5000),
    ("ffn_norm.weight", 100),
    ("ffn_up.weight", 5000),
];

/// Tensors laid out back to back from `start`, each padded to 32 bytes as GGUF does.
fn lay_out(names: &[(String, u64)], file: usize, start: u64) -> Vec<TensorInfo> {
    let mut off = start;
    names
        .iter()
        .map(|(name, n_bytes)| {
            let t = TensorInfo {
                name: name.clone(),
                dims: vec![*n_bytes],
                ty: GgmlType::F32,
                file,
                offset: off,
                n_bytes: *n_bytes,
            };
            off += n_bytes.div_ceil(32) * 32;
            t
        })
        .collect()
}

fn layer_names(layer: usize) -> Vec<(String, u64)> {
    LAYER
        .iter()
        .map(|(s, n)| (format!("blk.{layer}.{s}"), *n))
        .collect()
}

fn globals() -> Vec<(String, u64)> {
    vec![
        ("output_norm.weight".into(), 100),
        ("token_embd.weight".into(), 20_000),
    ]
}

fn index(names: Vec<(String, u64)>, start: u64) -> TensorIndex {
    TensorIndex {
        files: vec![PathBuf::from("/m/model.gguf")],
        tensors: lay_out(&names, 0, start),
    }
}

/// Checks the invariants every extent must hold, against the index it came from.
fn check_invariants(x: &LayerExtents, idx: &TensorIndex) {
    for e in x.layers.iter().flatten().chain(&x.globals) {
        assert_eq!(e.offset % x.alignment_bytes, 0);
        assert_eq!(e.len % x.alignment_bytes, 0);
        assert!(e.offset <= e.payload_offset && e.payload_offset - e.offset < x.alignment_bytes);
        assert!(e.payload_offset + e.payload_len <= e.offset + e.len);
        assert!(e.offset + e.len - (e.payload_offset + e.payload_len) < x.alignment_bytes);
        assert_eq!(e.head_bytes(), e.payload_offset - e.offset);
        for s in &e.tensors {
            let t = idx.get(&s.name).expect("tensor");
            assert_eq!(
                (e.file, e.payload_offset + s.offset_in_payload, s.n_bytes),
                (t.file, t.offset, t.n_bytes)
            );
            assert!(s.offset_in_payload + s.n_bytes <= e.payload_len);
        }
    }
}

#[test]
fn numeric_order_one_extent_per_layer() {
    let mut names = globals();
    (0..3).for_each(|l| names.extend(layer_names(l)));
    let idx = index(names, 1000);
    let x = LayerExtents::build(&idx, 3, ALIGN).expect("build");
    check_invariants(&x, &idx);
    assert_eq!(x.layers.len(), 3);
    let padded: u64 = LAYER.iter().map(|(_, n)| n.div_ceil(32) * 32).sum();
    for l in 0..3 {
        assert!(x.is_contiguous(l));
        let e = &x.layers[l][0];
        assert_eq!(e.tensors.len(), 9);
        // The last tensor (ffn_up, 5000 bytes) is not padded inside the payload.
        assert_eq!(e.payload_len, padded - (5024 - 5000));
        assert_eq!(e.tensors[0].role, TensorRole::K);
        assert_eq!(e.tensors[0].offset_in_payload, 0);
        assert_eq!(e.tensors[1].offset_in_payload, 1024);
        assert_eq!(x.layer_payload_bytes(l), e.payload_len);
    }
    assert_eq!(x.globals.len(), 2);
    assert_eq!(x.globals[0].tensors[0].role, TensorRole::OutputNorm);
    assert!(x.unknown.is_empty());
    let total: u64 = (0..3).map(|l| x.layer_bytes(l)).sum();
    assert_eq!(x.streamed_bytes_per_token(), total);
    assert_eq!(x.layer_bytes_all().len(), 3);
    assert_eq!(
        x.extent_bytes_max(),
        x.layers.iter().flatten().map(|e| e.len).max().expect("max")
    );
    assert_eq!(
        x.global_bytes(),
        x.globals.iter().map(|e| e.len).sum::<u64>()
    );
    let (e, s) = x.find(Some(2), TensorRole::Down).expect("down");
    assert_eq!(
        (e.payload_offset + s.offset_in_payload),
        idx.get("blk.2.ffn_down.weight").expect("t").offset
    );
    assert!(x.find(None, TensorRole::Output).is_none());
    assert!(x.find(None, TensorRole::TokenEmbd).is_some());
}

#[test]
fn lexicographic_layer_order() {
    // convert_hf_to_gguf order: 0, 1, 10, 11, 2, 3, …, 9.
    let mut order: Vec<usize> = (0..12).collect();
    order.sort_by_key(|l| l.to_string());
    assert_eq!(&order[..4], &[0, 1, 10, 11]);
    let mut names = vec![("token_embd.weight".to_string(), 7000)];
    order.iter().for_each(|&l| names.extend(layer_names(l)));
    names.push(("output_norm.weight".into(), 100));
    let idx = index(names, 96);
    let x = LayerExtents::build(&idx, 12, ALIGN).expect("build");
    check_invariants(&x, &idx);
    for l in 0..12 {
        assert!(x.is_contiguous(l), "layer {l}");
        assert!(x.layers[l][0]
            .tensors
            .iter()
            .all(|s| s.name.starts_with(&format!("blk.{l}."))));
    }
    // Layer 10 lies between layers 1 and 2 on disk.
    assert!(x.layers[1][0].payload_offset < x.layers[10][0].payload_offset);
    assert!(x.layers[10][0].payload_offset < x.layers[2][0].payload_offset);
}

#[test]
fn foreign_tensor_splits_a_layer() {
    // Layer 0 with an unknown tensor after its 4th tensor and its ffn_up moved into layer 1.
    let mut l0 = layer_names(0);
    let up0 = l0.pop().expect("ffn_up");
    l0.insert(4, ("blk.0.ffn_gate_inp.weight".into(), 64));
    let l1 = layer_names(1);
    let mut names = l0;
    names.extend_from_slice(&l1[..4]);
    names.push(up0);
    names.extend_from_slice(&l1[4..]);
    let idx = index(names, 0);
    let x = LayerExtents::build(&idx, 2, ALIGN).expect("build");
    check_invariants(&x, &idx);
    assert_eq!(x.unknown, vec!["blk.0.ffn_gate_inp.weight".to_string()]);
    assert_eq!(
        x.layers[0].len(),
        3,
        "before the unknown tensor, after it, inside layer 1"
    );
    assert!(!x.is_contiguous(0));
    assert_eq!(x.layers[1].len(), 2, "layer 1 is cut by layer 0's ffn_up");
    let n0: usize = x.layers[0].iter().map(|e| e.tensors.len()).sum();
    assert_eq!(n0, 9);
    let payload: u64 = x.layers[0].iter().map(|e| e.payload_len).sum();
    assert_eq!(x.layer_payload_bytes(0), payload);
}

#[test]
fn layer_straddling_shards() {
    let names = layer_names(0);
    let (a, b) = names.split_at(5);
    let mut tensors = lay_out(a, 0, 200);
    tensors.extend(lay_out(b, 1, 80));
    let idx = TensorIndex {
        files: vec!["/m/s1.safetensors".into(), "/m/s2.safetensors".into()],
        tensors,
    };
    let x = LayerExtents::build(&idx, 1, ALIGN).expect("build");
    check_invariants(&x, &idx);
    assert_eq!(
        x.layers[0].iter().map(|e| e.file).collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn alignment_rounding_and_payload_math() {
    // One layer whose payload is [4100, 4100 + 100 + pad + 8100).
    let names = vec![
        ("blk.0.attn_norm.weight".to_string(), 100),
        ("blk.0.ffn_norm.weight".to_string(), 8100),
    ];
    let idx = index(names, 4100);
    let x = LayerExtents::build(&idx, 1, ALIGN).expect("build");
    let e = &x.layers[0][0];
    assert_eq!(
        (e.offset, e.payload_offset, e.head_bytes()),
        (4096, 4100, 4)
    );
    assert_eq!(e.payload_len, 128 + 8100);
    assert_eq!(e.len, 12288, "4096 + 12288 = 16384 ≥ 4100 + 8228 = 12328");
    assert_eq!(e.tensors[1].offset_in_payload, 128);
    // Alignment 1 reads exactly the payload; 512 rounds to 512.
    let x1 = LayerExtents::build(&idx, 1, 1).expect("build");
    assert_eq!((x1.layers[0][0].offset, x1.layers[0][0].len), (4100, 8228));
    let x512 = LayerExtents::build(&idx, 1, 512).expect("build");
    assert_eq!(
        (x512.layers[0][0].offset, x512.layers[0][0].len),
        (4096, 8704)
    );
}

#[test]
fn errors_name_the_file() {
    let idx = index(layer_names(0), 0);
    for bad in [0, 3000] {
        let e = LayerExtents::build(&idx, 1, bad).expect_err("bad alignment");
        assert!(matches!(e.kind, ExtentsErrorKind::BadAlignment { .. }));
        assert!(e.to_string().starts_with("/m/model.gguf: "), "{e}");
    }
    let e = LayerExtents::build(&idx, 0, ALIGN).expect_err("out of range");
    assert!(
        matches!(
            e.kind,
            ExtentsErrorKind::LayerOutOfRange {
                layer: 0,
                n_layer: 0,
                ..
            }
        ),
        "{e}"
    );
    let e = LayerExtents::build(&idx, 2, ALIGN).expect_err("empty layer");
    assert!(
        matches!(e.kind, ExtentsErrorKind::EmptyLayer { layer: 1 }),
        "{e}"
    );
    let mut huge = index(layer_names(0), 0);
    huge.tensors[8].offset = u64::MAX - 10;
    let e = LayerExtents::build(&huge, 1, ALIGN).expect_err("overflow");
    assert!(matches!(e.kind, ExtentsErrorKind::Overflow { .. }), "{e}");
}
