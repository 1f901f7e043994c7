//! GGUF metadata values and the key/value table, with lenient typed getters.
//!
//! Integer-valued keys are read through [`Metadata::get_u64`] and friends, which accept any
//! integer type: third-party converters are not consistent about widths (gguf-facts.md §1.2).

use std::collections::HashMap;

/// One metadata value as stored in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous array value. Nested arrays are rejected by the parser, as llama.cpp does.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetaArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::Str(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name, for messages.
    pub fn elem_type_name(&self) -> &'static str {
        match self {
            MetaArray::U8(_) => "u8",
            MetaArray::I8(_) => "i8",
            MetaArray::U16(_) => "u16",
            MetaArray::I16(_) => "i16",
            MetaArray::U32(_) => "u32",
            MetaArray::I32(_) => "i32",
            MetaArray::F32(_) => "f32",
            MetaArray::Bool(_) => "bool",
            MetaArray::Str(_) => "string",
            MetaArray::U64(_) => "u64",
            MetaArray::I64(_) => "i64",
            MetaArray::F64(_) => "f64",
        }
    }

    /// The elements as i64 when the array holds integers of any width (token types, ids).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            MetaArray::U8(v) => v.iter().map(|&x| x as i64).collect(),
            MetaArray::I8(v) => v.iter().map(|&x| x as i64).collect(),
            MetaArray::U16(v) => v.iter().map(|&x| x as i64).collect(),
            MetaArray::I16(v) => v.iter().map(|&x| x as i64).collect(),
            MetaArray::U32(v) => v.iter().map(|&x| x as i64).collect(),
            MetaArray::I32(v) => v.iter().map(|&x| x as i64).collect(),
            MetaArray::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x).ok())
                .collect::<Option<_>>()?,
            MetaArray::I64(v) => v.clone(),
            _ => return None,
        })
    }

    /// The elements as f32 when the array holds floats (token scores).
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        match self {
            MetaArray::F32(v) => Some(v.clone()),
            MetaArray::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            _ => None,
        }
    }
}

impl MetaValue {
    /// The value's type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::F32(_) => "f32",
            MetaValue::Bool(_) => "bool",
            MetaValue::Str(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
        }
    }

    /// The value as u64 if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(x) => Some(x as u64),
            MetaValue::U16(x) => Some(x as u64),
            MetaValue::U32(x) => Some(x as u64),
            MetaValue::U64(x) => Some(x),
            MetaValue::I8(x) => u64::try_from(x).ok(),
            MetaValue::I16(x) => u64::try_from(x).ok(),
            MetaValue::I32(x) => u64::try_from(x).ok(),
            MetaValue::I64(x) => u64::try_from(x).ok(),
            _ => None,
        }
    }

    /// The value as f64 if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(x) => Some(x as f64),
            MetaValue::F64(x) => Some(x),
            MetaValue::I8(x) => Some(x as f64),
            MetaValue::I16(x) => Some(x as f64),
            MetaValue::I32(x) => Some(x as f64),
            MetaValue::I64(x) => Some(x as f64),
            _ => self.as_u64().map(|x| x as f64),
        }
    }

    /// The value as bool (integers: nonzero is true, as llama.cpp reads BOOL).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => self.as_u64().map(|x| x != 0),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// The key/value table of a GGUF file, in file order.
///
/// A hash index beside the ordered entries keeps lookups and duplicate checks O(1), so a hostile
/// file with a million keys cannot make parsing quadratic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, MetaValue)>,
    by_key: HashMap<String, usize>,
}

impl Metadata {
    /// An empty table (tests and non-GGUF sources build tables by hand).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a pair; returns `false` (and keeps the first) if the key is already present.
    pub fn insert(&mut self, key: impl Into<String>, value: MetaValue) -> bool {
        let key = key.into();
        if self.by_key.contains_key(&key) {
            return false;
        }
        self.by_key.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// Removes a pair (a caller done with a large array frees it); returns its value.
    pub fn remove(&mut self, key: &str) -> Option<MetaValue> {
        let i = self.by_key.remove(key)?;
        let (_, v) = self.entries.remove(i);
        for slot in self.by_key.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Some(v)
    }

    /// Looks a key up.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        let &i = self.by_key.get(key)?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// All pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An integer-valued key, whatever integer type it was written with.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(MetaValue::as_u64)
    }

    /// A float-valued key (f32, f64 or an integer).
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(MetaValue::as_f64)
    }

    /// A bool-valued key.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(MetaValue::as_bool)
    }

    /// A string-valued key.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetaValue::as_str)
    }

    /// An array-valued key.
    pub fn get_array(&self, key: &str) -> Option<&MetaArray> {
        self.get(key).and_then(MetaValue::as_array)
    }

    /// An array of strings (token pieces, merges).
    pub fn get_str_array(&self, key: &str) -> Option<&[String]> {
        match self.get_array(key)? {
            MetaArray::Str(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_first_and_file_order() {
        let mut m = Metadata::new();
        assert!(m.insert("b", MetaValue::U8(1)));
        assert!(m.insert("a", MetaValue::I32(-2)));
        assert!(!m.insert("b", MetaValue::U8(9)), "duplicate refused");
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("b"), Some(&MetaValue::U8(1)));
        assert_eq!(m.get("missing"), None);
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a"]);
        let mut same = Metadata::new();
        same.insert("b", MetaValue::U8(1));
        same.insert("a", MetaValue::I32(-2));
        assert_eq!(m, same);
    }

    #[test]
    fn remove_keeps_the_others_findable() {
        let mut m = Metadata::new();
        for (k, v) in [("a", 1u8), ("b", 2), ("c", 3)] {
            m.insert(k, MetaValue::U8(v));
        }
        assert_eq!(m.remove("a"), Some(MetaValue::U8(1)));
        assert_eq!(m.remove("a"), None);
        assert_eq!(m.get("c"), Some(&MetaValue::U8(3)));
        assert_eq!(m.get("b"), Some(&MetaValue::U8(2)));
        assert_eq!(m.len(), 2);
        assert!(m.insert("a", MetaValue::U8(4)));
        assert_eq!(
            m.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["b", "c", "a"]
        );
    }
}
