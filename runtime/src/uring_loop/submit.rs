//! Building and pushing submission entries for chunk reads: `ReadFixed` into registered slot
//! buffers (or plain `Read`), on fixed files (or plain descriptors).
//!
//! Each read is submitted as soon as it is pushed, one per `io_uring_enter`. Submitted together,
//! adjacent chunks are plugged and merged by the block layer into one request (up to the
//! device's `max_sectors_kb`): 4 reads of 1 MiB at queue depth 4 reach the device as one 4 MiB
//! read, complete together and are resubmitted together. Submitted one by one they stay
//! `queue_depth` requests of `chunk_bytes`, as configured and as fio issues them, so a
//! comparison at equal settings is one. The cost is one system call per chunk.

use io_uring::{opcode, squeue, types};

use super::{Op, UringLoop};
use crate::limits::IOVEC_BYTES_MAX;
use crate::uring::{warn_once, FILE_UPDATE_WARNED};

impl UringLoop {
    /// Pushes the read of `ops[op]`'s chunk.
    pub(super) fn push_read(&mut self, op: usize) {
        let Op { slot, chunk } = self.ops[op];
        let job = self.jobs[slot].as_ref().expect("op names a live job");
        let (fd, file_id) = (job.file.fd(), job.extent.file.index());
        let offset = job.file_offset(chunk.pos);
        let fixed_file = self.fixed_file(file_id, fd);
        // SAFETY: pos < extent length <= slot size (validated at submit), so inside the slot.
        let buf = unsafe { self.shared.ring.slot_ptr(slot).add(chunk.pos as usize) };
        let len = u32::try_from(chunk.len).expect("chunks are at most CHUNK_BYTES_MAX");
        let buf_index = self.iovecs_per_slot.map(|per_slot| {
            let index = slot * per_slot + chunk.pos as usize / IOVEC_BYTES_MAX;
            u16::try_from(index).expect("at most FIXED_BUFFERS_MAX buffers")
        });
        macro_rules! read_entry {
            ($fd:expr) => {
                match buf_index {
                    Some(index) => opcode::ReadFixed::new($fd, buf, len, index)
                        .offset(offset)
                        .build(),
                    None => opcode::Read::new($fd, buf, len).offset(offset).build(),
                }
            };
        }
        let entry = match fixed_file {
            Some(index) => read_entry!(types::Fixed(index)),
            None => read_entry!(types::Fd(fd)),
        };
        self.push(&entry.user_data(op as u64));
        self.busy.start();
        self.submit();
    }

    /// The fixed-file index of `file_id`, registering `fd` there on first use.
    fn fixed_file(&mut self, file_id: usize, fd: i32) -> Option<u32> {
        let table = self.fixed_files.as_mut()?;
        let index = u32::try_from(file_id).ok()?;
        if !table[file_id] {
            match self.ring.submitter().register_files_update(index, &[fd]) {
                Ok(_) => table[file_id] = true,
                Err(e) => {
                    warn_once(&FILE_UPDATE_WARNED, "fixed file update", &e);
                    return None;
                }
            }
        }
        Some(index)
    }

    pub(super) fn push(&mut self, entry: &squeue::Entry) {
        // The SQ holds queue_depth + 1 entries, all submitted before each reap, so it has room
        // for every op plus the poll; flush once if a kernel ever says otherwise.
        for _ in 0..2 {
            // SAFETY: a read entry points into a Reading slot that only this loop touches until
            // its completion is reaped, and the slab outlives the ring (see the struct docs);
            // the poll entry points at no memory.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            let _ = self.ring.submit();
        }
        panic!("io_uring submission queue stays full; sized for queue_depth + 1 entries");
    }
}
