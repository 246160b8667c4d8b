//! HTTP body wrappers for request-level faults: [`Throttled`] paces a body
//! to a byte rate (`bandwidth` on an HTTP proxy), [`Cut`] ends one with an
//! error partway (`http-abort` at the response), which makes hyper drop the
//! connection mid-body. Both let go once their fault is reverted: the rest
//! of the body flows as it came.

use super::Shared;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Errors of proxied bodies.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A proxied body.
pub(super) type BoxBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The error that cuts an exchange short on purpose.
#[derive(Debug)]
pub(super) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("aborted by an http-abort fault")
    }
}

impl std::error::Error for Aborted {}

/// How often a paced body looks whether its faults were reverted while it
/// waits (a piece is ~10 ms worth, so this matters only for tiny rates).
const RECHECK: Duration = Duration::from_millis(50);

/// A body sent at the slowest rate of its still-active `bandwidth` faults,
/// in pieces of ~10 ms worth; at full speed once they are all reverted.
pub(super) struct Throttled {
    inner: BoxBody,
    /// (fault key, bytes per second).
    rates: Vec<(u64, u64)>,
    shared: Arc<Shared>,
    /// When the next piece may go.
    next: Instant,
    wait: Option<Pin<Box<Sleep>>>,
    /// Data read from `inner` and not yet sent.
    held: Bytes,
}

impl Throttled {
    pub(super) fn new(inner: BoxBody, rates: Vec<(u64, u64)>, shared: Arc<Shared>) -> Throttled {
        Throttled {
            inner,
            rates,
            shared,
            next: Instant::now(),
            wait: None,
            held: Bytes::new(),
        }
    }

    /// The rate now: the slowest fault still active.
    fn rate(&mut self) -> Option<u64> {
        let shared = &self.shared;
        self.rates.retain(|(key, _)| shared.has(*key));
        self.rates.iter().map(|(_, r)| (*r).max(1)).min()
    }
}

impl Body for Throttled {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.held.is_empty() {
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.held = data,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return Poll::Ready(other),
            }
            if this.held.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::new()))));
            }
        }
        let rate = loop {
            let Some(rate) = this.rate() else {
                // Reverted: what is held goes at once, the rest as it comes.
                this.wait = None;
                return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.held)))));
            };
            let now = Instant::now();
            if this.next <= now {
                break rate;
            }
            let wake = this.next.min(now + RECHECK);
            let wait = this
                .wait
                .get_or_insert_with(|| Box::pin(super::timer::sleep_until(wake)));
            ready!(wait.as_mut().poll(cx));
            this.wait = None;
        };
        // An idle body does not bank a burst.
        let now = Instant::now();
        if this.next + Duration::from_millis(50) < now {
            this.next = now;
        }
        let piece = usize::try_from(rate / 100)
            .unwrap_or(usize::MAX)
            .clamp(1, this.held.len());
        let out = this.held.split_to(piece);
        this.next += Duration::from_secs_f64(out.len() as f64 / rate as f64);
        Poll::Ready(Some(Ok(Frame::data(out))))
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let held = self.held.len() as u64;
        hint.set_lower(hint.lower() + held);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

/// A body that ends in an error after `left` bytes, first calling
/// `on_cut` (which arms a reset when the fault asks for one), unless
/// `armed` says the fault was reverted before the cut: then the body goes
/// on whole. hyper drops what it has buffered when a body fails, so the
/// cut waits a moment (`FLUSH`) for the bytes before it to reach the client.
pub(super) struct Cut {
    inner: BoxBody,
    /// Bytes before the cut; `None` once the fault was reverted in time.
    left: Option<u64>,
    armed: Arc<dyn Fn() -> bool + Send + Sync>,
    on_cut: Option<Arc<dyn Fn() + Send + Sync>>,
    flush: Option<Pin<Box<Sleep>>>,
}

const FLUSH: Duration = Duration::from_millis(20);

impl Cut {
    pub(super) fn new(
        inner: BoxBody,
        left: u64,
        armed: Arc<dyn Fn() -> bool + Send + Sync>,
        on_cut: Arc<dyn Fn() + Send + Sync>,
    ) -> Cut {
        Cut {
            inner,
            left: Some(left),
            armed,
            on_cut: Some(on_cut),
            flush: None,
        }
    }
}

impl Body for Cut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.left == Some(0) {
            if !(this.armed)() {
                this.left = None;
            } else {
                let flush = this
                    .flush
                    .get_or_insert_with(|| Box::pin(super::timer::sleep(FLUSH)));
                ready!(flush.as_mut().poll(cx));
                if let Some(cut) = this.on_cut.take() {
                    cut();
                }
                return Poll::Ready(Some(Err(Box::new(Aborted))));
            }
        }
        let Some(left) = this.left else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 >= left {
                        if !(this.armed)() {
                            this.left = None;
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        data.truncate(left as usize);
                    }
                    this.left = Some(left - data.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            // Shorter than the cut: it still ends in the abort, unless the
            // fault is gone by now.
            None if (this.armed)() => {
                this.left = Some(0);
                self.poll_frame(cx)
            }
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
