//! Reads the KV section: keys, typed values and arrays, into a [`Metadata`] table.

use std::io::Read;

use super::cursor::BoundedReader;
use super::error::{Fault, GgufErrorKind, ParseResult, Section};
use super::layout;
use super::limits::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT};
use super::value::{MetaArray, MetaValue, Metadata};
use super::value_type::ValueType;

/// Reads `kv_count` pairs and returns them with the data alignment they set (`general.alignment`,
/// validated where it is read, or the default). Duplicate keys are an error, as in llama.cpp.
pub(crate) fn read_metadata<R: Read>(
    r: &mut BoundedReader<R>,
    kv_count: u64,
) -> ParseResult<(Metadata, u64)> {
    let mut meta = Metadata::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for index in 0..kv_count {
        r.set_section(Section::KvKey {
            index,
            count: kv_count,
        });
        let key_at = r.pos();
        let key = r.string()?;
        if meta.get(&key).is_some() {
            return Err(Fault::at(key_at, GgufErrorKind::DuplicateKey { key }));
        }
        r.set_section(Section::KvValue {
            index,
            count: kv_count,
            key: key.clone(),
        });
        let value_at = r.pos();
        let value = read_value(r)?;
        if key == ALIGNMENT_KEY {
            alignment = layout::alignment_from(&value).map_err(|kind| Fault::at(value_at, kind))?;
        }
        meta.insert(key, value);
    }
    Ok((meta, alignment))
}

/// Reads a type id and the value it announces.
fn read_value<R: Read>(r: &mut BoundedReader<R>) -> ParseResult<MetaValue> {
    let ty = read_type(r)?;
    Ok(match ty {
        ValueType::U8 => MetaValue::U8(r.u8()?),
        ValueType::I8 => MetaValue::I8(i8::from_le_bytes(r.array()?)),
        ValueType::U16 => MetaValue::U16(r.u16()?),
        ValueType::I16 => MetaValue::I16(i16::from_le_bytes(r.array()?)),
        ValueType::U32 => MetaValue::U32(r.u32()?),
        ValueType::I32 => MetaValue::I32(i32::from_le_bytes(r.array()?)),
        ValueType::F32 => MetaValue::F32(f32::from_le_bytes(r.array()?)),
        ValueType::Bool => MetaValue::Bool(r.u8()? != 0),
        ValueType::Str => MetaValue::Str(r.string()?),
        ValueType::Array => MetaValue::Array(read_array(r)?),
        ValueType::U64 => MetaValue::U64(r.u64()?),
        ValueType::I64 => MetaValue::I64(i64::from_le_bytes(r.array()?)),
        ValueType::F64 => MetaValue::F64(f64::from_le_bytes(r.array()?)),
    })
}

/// Reads a u32 value type id, rejecting unknown ids.
fn read_type<R: Read>(r: &mut BoundedReader<R>) -> ParseResult<ValueType> {
    let at = r.pos();
    let id = r.u32()?;
    ValueType::from_id(id).ok_or_else(|| {
        Fault::at(
            at,
            GgufErrorKind::UnknownValueType {
                section: r.section().clone(),
                id,
            },
        )
    })
}

/// Reads an array: element type, u64 count, elements. The count is bounded by the bytes left.
fn read_array<R: Read>(r: &mut BoundedReader<R>) -> ParseResult<MetaArray> {
    let elem_at = r.pos();
    let elem = read_type(r)?;
    let count_at = r.pos();
    let count = r.u64()?;
    r.check_count(count_at, "array element", count, elem.min_bytes())?;
    Ok(match elem {
        ValueType::Array => {
            let section = r.section().clone();
            return Err(Fault::at(elem_at, GgufErrorKind::NestedArray { section }));
        }
        ValueType::Str => MetaArray::Str(read_strings(r, count)?),
        ValueType::U8 => MetaArray::U8(r.bytes(count)?),
        ValueType::I8 => MetaArray::I8(fixed(r, count, i8::from_le_bytes)?),
        ValueType::U16 => MetaArray::U16(fixed(r, count, u16::from_le_bytes)?),
        ValueType::I16 => MetaArray::I16(fixed(r, count, i16::from_le_bytes)?),
        ValueType::U32 => MetaArray::U32(fixed(r, count, u32::from_le_bytes)?),
        ValueType::I32 => MetaArray::I32(fixed(r, count, i32::from_le_bytes)?),
        ValueType::F32 => MetaArray::F32(fixed(r, count, f32::from_le_bytes)?),
        ValueType::Bool => MetaArray::Bool(r.bytes(count)?.iter().map(|&b| b != 0).collect()),
        ValueType::U64 => MetaArray::U64(fixed(r, count, u64::from_le_bytes)?),
        ValueType::I64 => MetaArray::I64(fixed(r, count, i64::from_le_bytes)?),
        ValueType::F64 => MetaArray::F64(fixed(r, count, f64::from_le_bytes)?),
    })
}

/// Reads `count` strings (the count was already bounded by the bytes left).
fn read_strings<R: Read>(r: &mut BoundedReader<R>, count: u64) -> ParseResult<Vec<String>> {
    let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        items.push(r.string()?);
    }
    Ok(items)
}

/// Reads `count` packed `N`-byte elements in one bounded read.
fn fixed<R: Read, const N: usize, T>(
    r: &mut BoundedReader<R>,
    count: u64,
    from_le: fn([u8; N]) -> T,
) -> ParseResult<Vec<T>> {
    let raw = r.bytes(count.saturating_mul(N as u64))?;
    Ok(decode(&raw, from_le))
}

/// Decodes packed little-endian `N`-byte elements.
fn decode<const N: usize, T>(raw: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            from_le(a)
        })
        .collect()
}
