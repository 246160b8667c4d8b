//! Read buffers of the fast paths (TCP and HTTP/1.1). A connection that
//! goes idle gives its empty buffer back, so it holds no memory while
//! idle; up to [`KEEP`] such buffers stay with the thread, and the next
//! read of any connection on that thread takes one, so a small request
//! and answer cost no allocation on a busy thread.

use bytes::BytesMut;
use std::cell::RefCell;

/// The most bytes one read takes.
pub(super) const CHUNK: usize = 16 * 1024;

/// The most spare buffers one thread keeps.
const KEEP: usize = 4;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Make room in `buf` for one read (at least a quarter of [`CHUNK`], up
/// to a whole one), with one of the thread's spares if `buf` holds no
/// memory.
pub(super) fn room(buf: &mut BytesMut) {
    if buf.capacity() == 0
        && let Ok(Some(spare)) = SPARE.try_with(|s| s.borrow_mut().pop())
    {
        *buf = spare;
    }
    // Below a quarter of a read's worth of room, make a whole read's
    // worth (moving the buffer's space back to its start, or growing it);
    // above it, a small message does not pay for that on every read.
    if buf.capacity() - buf.len() < CHUNK / 4 {
        buf.reserve(CHUNK);
    }
}

/// An idle connection's `buf`, if empty, goes to the thread's spares (or
/// is freed when enough are kept, or the thread is exiting); `buf` then
/// holds no memory. A buffer with bytes in it stays.
pub(super) fn release(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let mut spare = std::mem::take(buf);
    spare.clear();
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(spare);
        }
    });
}
