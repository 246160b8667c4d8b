//! The TCP fast path: while no fault applies to a direction, bytes are
//! written as soon as they are read, in the connection's own task, with no
//! queue between reader and writer. Reading the next bytes overlaps
//! writing the previous ones (up to [`AHEAD`] bytes read ahead), and
//! buffers are given back whenever they empty, so an idle connection holds
//! no memory beyond its sockets.
//!
//! An idle connection's buffer goes to its thread's spares
//! (`buffers.rs`).
//!
//! Reads and writes go through `AsyncRead`/`AsyncWrite`, whose short
//! reads and writes tell tokio the socket is drained (or full), saving the
//! extra system call that would otherwise only learn `EAGAIN`.

use super::buffers;
use bytes::{Buf, Bytes, BytesMut};
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// The most bytes read ahead of the writer.
const AHEAD: usize = 64 * 1024;

/// How [`forward`] stopped.
pub(super) enum Stop {
    /// The source ended (or was reset) and everything read was written.
    Eof,
    /// Writing failed: the destination is gone.
    Broken,
    /// A fault applies now; these bytes were read and not yet written.
    Faulted(Bytes),
}

/// Forwards `rd` to `wr` while `idle()` holds, calling `sent` with each
/// count of bytes written.
pub(super) async fn forward<R, W>(
    rd: &mut R,
    wr: &mut W,
    mut idle: impl FnMut() -> bool,
    mut sent: impl FnMut(usize),
) -> io::Result<Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // `out` is being written; `ahead` is read while `out` waits.
    let mut out = BytesMut::new();
    let mut ahead = BytesMut::new();
    let mut eof = false;
    loop {
        if out.is_empty() && !ahead.is_empty() {
            std::mem::swap(&mut out, &mut ahead);
        }
        if out.is_empty() {
            if eof {
                return Ok(Stop::Eof);
            }
            // A read into a buffer taken for this poll. While nothing
            // comes the memory goes back (both buffers are empty here), and
            // the read's own registration wakes the task: one visit to the
            // socket's waiter slot per wait.
            let read = poll_fn(|cx| {
                buffers::room(&mut out);
                let read = std::pin::pin!(rd.read_buf(&mut out)).poll(cx);
                if read.is_pending() {
                    buffers::release(&mut out);
                    buffers::release(&mut ahead);
                }
                read
            })
            .await;
            if matches!(read, Ok(0) | Err(_)) {
                eof = true;
            }
        } else {
            if !eof && ahead.len() < AHEAD {
                buffers::room(&mut ahead);
            }
            tokio::select! {
                biased;
                // A fault that came while waiting acts on every byte not
                // yet written: look just before each write.
                written = poll_fn(|cx| {
                    if !idle() {
                        return Poll::Ready(None);
                    }
                    Pin::new(&mut *wr).poll_write(cx, &out).map(Some)
                }) => {
                    match written {
                        None => return Ok(faulted(out, ahead)),
                        Some(Ok(n)) => {
                            out.advance(n);
                            sent(n);
                        }
                        Some(Err(_)) => return Ok(Stop::Broken),
                    }
                    continue;
                }
                read = rd.read_buf(&mut ahead), if !eof && ahead.len() < AHEAD => {
                    if matches!(read, Ok(0) | Err(_)) {
                        eof = true;
                    }
                    continue;
                }
            }
        }
        if out.is_empty() {
            continue;
        }
        // Fresh bytes: a fault may have come while waiting, and acts on
        // every byte not yet written. Most writes go through at once, so
        // try before waiting on readiness again.
        if !idle() {
            return Ok(faulted(out, ahead));
        }
        let now = poll_fn(|cx| Poll::Ready(Pin::new(&mut *wr).poll_write(cx, &out))).await;
        match now {
            Poll::Ready(Ok(n)) => {
                out.advance(n);
                sent(n);
            }
            Poll::Ready(Err(_)) => return Ok(Stop::Broken),
            Poll::Pending => {}
        }
    }
}

/// Everything read and not yet written, in order.
fn faulted(mut out: BytesMut, ahead: BytesMut) -> Stop {
    out.extend_from_slice(&ahead);
    Stop::Faulted(out.freeze())
}
