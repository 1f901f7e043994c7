//! Byte encoding of GGUF values and records (little-endian), for the writer.

use super::value::{MetaArray, MetaValue};
use super::value_type::ValueType;

/// Appends a little-endian u32.
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a little-endian u64.
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a GGUF string: u64 length, then the bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends a tensor info record: name, n_dims, dims, type id, offset.
pub(crate) fn put_tensor_info(
    out: &mut Vec<u8>,
    name: &[u8],
    dims: &[u64],
    type_id: u32,
    offset: u64,
) {
    put_str(out, name);
    put_u32(out, dims.len() as u32);
    for &d in dims {
        put_u64(out, d);
    }
    put_u32(out, type_id);
    put_u64(out, offset);
}

/// Appends a value's payload (its type id is written by the caller).
pub(crate) fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::Str(s) => put_str(out, s.as_bytes()),
        MetaValue::Array(a) => put_array(out, a),
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Appends an array: element type, count, elements.
fn put_array(out: &mut Vec<u8>, a: &MetaArray) {
    put_u32(out, ValueType::of_array_elems(a).id());
    put_u64(out, a.len() as u64);
    match a {
        MetaArray::U8(v) => out.extend_from_slice(v),
        MetaArray::I8(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::U16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::U32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::Bool(v) => v.iter().for_each(|&x| out.push(u8::from(x))),
        MetaArray::Str(v) => v.iter().for_each(|s| put_str(out, s.as_bytes())),
        MetaArray::U64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_strings_and_arrays_little_endian() {
        let mut out = vec![];
        put_value(&mut out, &MetaValue::Str("ab".into()));
        assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);
        out.clear();
        put_value(&mut out, &MetaValue::Array(MetaArray::U16(vec![1, 0x0203])));
        assert_eq!(out, [2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 2]);
    }

    #[test]
    fn encodes_tensor_info_records() {
        let mut out = vec![];
        put_tensor_info(&mut out, b"w", &[32, 2], 8, 64);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0, b'w', 2, 0, 0, 0];
        expected.extend_from_slice(&32u64.to_le_bytes());
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&8u32.to_le_bytes());
        expected.extend_from_slice(&64u64.to_le_bytes());
        assert_eq!(out, expected);
    }
}
