//! Format constants and the limits the parser enforces, named once and checked against each other.

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Oldest version read: v1 stored counts and lengths as u32 and llama.cpp dropped it too.
pub const MIN_VERSION: u32 = 2;

/// Newest version read.
pub const MAX_VERSION: u32 = 3;

/// The version the writer emits unless told otherwise.
pub const DEFAULT_VERSION: u32 = 3;

/// Data-section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The key that overrides the data-section alignment (must be a u32).
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The key naming the model architecture.
pub const ARCHITECTURE_KEY: &str = "general.architecture";

/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

/// ggml's `GGML_MAX_NAME` is 64 including the NUL, so names hold at most 63 bytes.
pub const MAX_TENSOR_NAME_BYTES: u64 = 63;

/// Bytes before the first KV pair: magic, version, tensor count, kv count.
pub const PREAMBLE_BYTES: u64 = 4 + 4 + 8 + 8;

/// Smallest possible KV pair: empty key (u64 length), value type (u32), a 1-byte value.
pub const MIN_KV_BYTES: u64 = 8 + 4 + 1;

/// Smallest possible tensor info: empty name (u64 length), n_dims = 0, type (u32), offset (u64).
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Smallest possible string: its u64 length alone.
pub const MIN_STRING_BYTES: u64 = 8;

/// Buffer size for `GgufFile::open`'s reads: big enough that token arrays stream in few syscalls.
pub const OPEN_BUFFER_BYTES: usize = 256 * 1024;

const _: () = assert!(MIN_VERSION <= DEFAULT_VERSION && DEFAULT_VERSION <= MAX_VERSION);
const _: () = assert!(DEFAULT_ALIGNMENT.is_power_of_two());
const _: () = assert!(MIN_KV_BYTES > 0 && MIN_TENSOR_INFO_BYTES > 0 && MIN_STRING_BYTES > 0);
