//! Every limit of the runtime as a named constant, checked against the others at compile time.
//!
//! TIGER_STYLE: bounded queues everywhere, and the bounds agree with one another and with the
//! kernel's own limits (io_uring fixed buffers, the largest single read Linux performs).

/// Alignment of every slot start and slot size (one page; covers 512e and 4Kn drives).
pub const SLOT_ALIGN_BYTES: usize = 4096;
/// Size and alignment of a transparent huge page; slabs at least this large use it.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;
/// Most slots a ring may have (io_uring accepts at most 16,384 fixed buffers in all).
pub const SLOTS_MAX: usize = 1024;
/// Largest slot: bounded so slot offsets stay far from overflow and one slot fits in RAM.
pub const SLOT_BYTES_MAX: usize = 64 << 30;
/// Direct-I/O alignment assumed when statx does not report one.
pub const ALIGN_BYTES_DEFAULT: u64 = 4096;
/// Most reads (chunks) in flight at once in one reader.
pub const QUEUE_DEPTH_MAX: usize = 256;
/// Smallest chunk a reader splits an extent into.
pub const CHUNK_BYTES_MIN: usize = SLOT_ALIGN_BYTES;
/// Largest chunk a reader splits an extent into.
pub const CHUNK_BYTES_MAX: usize = 64 << 20;
/// Largest byte count Linux moves in one read(2) (MAX_RW_COUNT).
pub const READ_BYTES_MAX: usize = 0x7fff_f000;
/// Largest iovec io_uring accepts as one fixed buffer.
pub const IOVEC_BYTES_MAX: usize = 1 << 30;
/// Most fixed buffers io_uring accepts (IORING_MAX_REG_BUFFERS).
pub const FIXED_BUFFERS_MAX: usize = 1 << 14;
/// Most files one reader may open (the size of the fixed-file table).
pub const FILES_MAX: usize = 256;
/// Completions copied out of the completion queue per batch before they are handled.
pub const CQE_BATCH_MAX: usize = 64;
/// Most pread worker threads.
pub const PREAD_THREADS_MAX: usize = 16;
/// Consecutive failures of io_uring_enter after which the loop gives up.
pub const ENTER_FAILURES_MAX: u32 = 1000;

const _: () = assert!(SLOT_ALIGN_BYTES.is_power_of_two());
const _: () = assert!(HUGE_PAGE_BYTES.is_multiple_of(SLOT_ALIGN_BYTES));
const _: () = assert!(ALIGN_BYTES_DEFAULT as usize == SLOT_ALIGN_BYTES);
const _: () = assert!(CHUNK_BYTES_MIN.is_multiple_of(SLOT_ALIGN_BYTES));
const _: () = assert!(CHUNK_BYTES_MAX.is_multiple_of(SLOT_ALIGN_BYTES));
const _: () = assert!(CHUNK_BYTES_MIN <= CHUNK_BYTES_MAX);
const _: () = assert!(CHUNK_BYTES_MAX <= READ_BYTES_MAX);
const _: () = assert!(CHUNK_BYTES_MAX <= IOVEC_BYTES_MAX);
const _: () = assert!(IOVEC_BYTES_MAX.is_multiple_of(SLOT_ALIGN_BYTES));
const _: () = assert!(SLOTS_MAX <= FIXED_BUFFERS_MAX);
const _: () = assert!(FIXED_BUFFERS_MAX <= u16::MAX as usize + 1);
const _: () = assert!(SLOT_BYTES_MAX.is_multiple_of(SLOT_ALIGN_BYTES));
const _: () = assert!(FILES_MAX <= u32::MAX as usize);
// One submission entry is reserved for the wake-up poll on top of the chunk reads.
const _: () = assert!((QUEUE_DEPTH_MAX + 1).next_power_of_two() <= 4096);
const _: () = assert!(CQE_BATCH_MAX <= QUEUE_DEPTH_MAX);
const _: () = assert!(PREAD_THREADS_MAX <= QUEUE_DEPTH_MAX);
