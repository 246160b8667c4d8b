//! TCP mode. On a proxy's connection threads, a connection opened while
//! the proxy has no fault goes to the relay (`relay.rs`) until a fault
//! comes; then, or from the start, it runs here: two pumps per connection
//! and a watchdog. While no fault
//! applies to its direction, a pump runs the fast path (`fast.rs`): bytes
//! are written as soon as they are read. Otherwise it reads
//! chunks, stamps them with their arrival time, and a writer sends each one
//! when the faults allow: after its delay (never before the previous chunk,
//! so order holds), paced by `bandwidth`, cut by `slicer`, held by
//! `blackhole` and `timeout`, cut off by `limit-data`. The watchdog ends the
//! connection when a `timeout` or `reset-peer` comes due.
//!
//! Every wait also wakes on a change to the proxy's faults, so a new fault
//! acts on the next byte and a revert releases held data at once.

use super::fast::{self, Stop};
use super::relay::{self, Rest};
use super::{Conn, Direction, Effect, ProxyFault, Shared, Watch, timer};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Pacing may catch up on at most this much lateness (timer granularity is
/// ~1 ms), and no more, so an idle link does not bank a burst.
const PACE_SLACK: Duration = Duration::from_millis(50);

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both directions finished normally.
    Eof,
    /// Close both sides now (`limit-data`, `timeout`).
    Close,
    /// Abort with RST toward the side(s) in the direction (`reset-peer`).
    Reset(Direction),
}

pub(super) async fn serve(client: TcpStream, conn: &Conn, shared: &Arc<Shared>, watch: &Watch<'_>) {
    // An unreachable upstream closes the client's connection, as a real
    // link would.
    let Ok(upstream) = TcpStream::connect(&shared.upstream).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    // While the proxy has no fault, the relay carries the bytes; it gives
    // the connection back when one comes.
    let (mut client, mut upstream, [up_rest, down_rest]) = match relay::current() {
        Some(relay) if shared.quiet() => {
            let (Ok(client), Ok(upstream)) = (client.into_std(), upstream.into_std()) else {
                return;
            };
            let Some(back) = relay.carry(client, upstream, shared.clone(), watch).await else {
                return;
            };
            let (Ok(client), Ok(upstream)) = (
                TcpStream::from_std(back.client),
                TcpStream::from_std(back.upstream),
            ) else {
                return;
            };
            (client, upstream, back.flows)
        }
        _ => (client, upstream, Default::default()),
    };
    let end = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let up = pump(cr, uw, conn, shared, Direction::Upstream, up_rest);
        let down = pump(ur, cw, conn, shared, Direction::Downstream, down_rest);
        let watchdog = watchdog(conn, shared, watch);
        tokio::pin!(up, down, watchdog);
        // Each part is polled only when its own waker woke it (`wakes.rs`).
        let wakers = [watch.part(0), watch.part(1), watch.part(2)];
        let (mut up_done, mut down_done) = (false, false);
        std::future::poll_fn(|_| {
            let woken = watch.woken();
            let polled = |part: usize, f: Pin<&mut dyn Future<Output = End>>| {
                (woken & 1 << part != 0).then(|| f.poll(&mut Context::from_waker(&wakers[part])))
            };
            // The watchdog first: a `reset-peer` due now wins over bytes
            // that are ready to go.
            if let Some(Poll::Ready(e)) = polled(0, watchdog.as_mut()) {
                return Poll::Ready(e);
            }
            if !up_done && let Some(Poll::Ready(e)) = polled(1, up.as_mut()) {
                up_done = true;
                if e != End::Eof {
                    return Poll::Ready(e);
                }
            }
            if !down_done && let Some(Poll::Ready(e)) = polled(2, down.as_mut()) {
                down_done = true;
                if e != End::Eof {
                    return Poll::Ready(e);
                }
            }
            match up_done && down_done {
                true => Poll::Ready(End::Eof),
                false => Poll::Pending,
            }
        })
        .await
    };
    if let End::Reset(direction) = end {
        if direction.covers(Direction::Downstream) {
            let _ = client.set_zero_linger();
        }
        if direction.covers(Direction::Upstream) {
            let _ = upstream.set_zero_linger();
        }
    }
}

/// Waits for a `timeout` or `reset-peer` to come due for this connection.
async fn watchdog(conn: &Conn, shared: &Shared, watch: &Watch<'_>) -> End {
    // `timeout` faults that close the connection when they go away.
    let mut closing: Vec<u64> = Vec::new();
    loop {
        watch.mark();
        let faults = shared.faults();
        if closing
            .iter()
            .any(|key| !faults.iter().any(|f| f.key == *key))
        {
            return End::Close;
        }
        let mut due: Option<(Instant, End)> = None;
        for f in faults.iter() {
            if let Effect::Timeout {
                close_on_revert: true,
                ..
            } = f.effect
                && conn.applies(f)
                && !closing.contains(&f.key)
            {
                closing.push(f.key);
            }
            let (after, end) = match f.effect {
                Effect::Timeout { after, .. } if !after.is_zero() => (after, End::Close),
                Effect::ResetPeer { after, direction } => (after, End::Reset(direction)),
                _ => continue,
            };
            if !conn.applies(f) {
                continue;
            }
            let at = conn.since(f) + after;
            if due.is_none_or(|(d, _)| at < d) {
                due = Some((at, end));
            }
        }
        match due {
            // Due already (`after = 0`, or a fault applied to an old
            // connection): now, not at the timer's next tick, or a short
            // exchange would get through first.
            Some((at, end)) if at <= Instant::now() => return end,
            Some((at, end)) => tokio::select! {
                _ = timer::sleep_until(at) => return end,
                () = watch.changed() => {}
            },
            None => watch.changed().await,
        }
    }
}

/// Forwards one direction: `rest` is what the relay left of it.
async fn pump<R, W>(
    mut rd: R,
    wr: W,
    conn: &Conn,
    shared: &Shared,
    flow: Direction,
    rest: Rest,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if rest.done {
        return End::Eof;
    }
    let mut w = Writer {
        wr,
        conn,
        shared,
        flow,
        changes: shared.changes.subscribe(),
        last_due: Instant::now(),
        pace: Instant::now(),
        sent: HashMap::new(),
        closing: Vec::new(),
    };
    // Bytes the relay read and did not write, first and as the faults say.
    if !rest.pending.is_empty()
        && let Some(end) = faulted(&mut rd, &mut w, (Instant::now(), rest.pending)).await
    {
        return end;
    }
    loop {
        // The fast path, while no fault applies to this direction.
        let counter = w.counter();
        let (shared, conn, flow) = (w.shared, w.conn, w.flow);
        let closing = &w.closing;
        let stop = fast::forward(
            &mut rd,
            &mut w.wr,
            || idle(shared, conn, flow, closing),
            |n| counter.add(n as u64),
        )
        .await;
        let chunk = match stop {
            Ok(Stop::Eof) | Err(_) => return w.finish().await,
            Ok(Stop::Broken) => return End::Close,
            Ok(Stop::Faulted(chunk)) => chunk,
        };
        // A fault applies: reader and writer run side by side through a
        // queue until the queue is empty and no fault applies any more.
        if let Some(end) = faulted(&mut rd, &mut w, (Instant::now(), chunk)).await {
            return end;
        }
    }
}

/// Runs a pump's faulted path, starting with `first`. `None` means the
/// writer caught up and no fault applies: back to the fast path.
async fn faulted<R, W>(rd: &mut R, w: &mut Writer<'_, W>, first: (Instant, Bytes)) -> Option<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(64);
    tx.try_send(first).expect("an empty queue has room");
    let reader = async move {
        let mut buf = BytesMut::new();
        loop {
            // The slot is taken before reading, so when the writer goes back
            // to the fast path and this future is dropped, it holds no chunk
            // (a pending read loses nothing).
            let Ok(slot) = tx.reserve().await else { break };
            buf.reserve(super::buffers::CHUNK);
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => slot.send((Instant::now(), buf.split().freeze())),
            }
        }
    };
    let writer = async {
        loop {
            let (arrived, chunk) = match rx.try_recv() {
                Ok(next) => next,
                Err(mpsc::error::TryRecvError::Empty) if w.idle() => return None,
                Err(mpsc::error::TryRecvError::Empty) => match rx.recv().await {
                    Some(next) => next,
                    None => return Some(w.finish().await),
                },
                Err(mpsc::error::TryRecvError::Disconnected) => return Some(w.finish().await),
            };
            if let Err(end) = w.send(arrived, chunk).await {
                return Some(end);
            }
        }
    };
    // The writer decides how the pump ends; a reader still waiting for
    // bytes must not hold a closed connection open.
    tokio::pin!(reader, writer);
    tokio::select! {
        end = &mut writer => end,
        _ = &mut reader => writer.await,
    }
}

/// No fault applies to `flow` and none is still to be honoured (a
/// reverted `timeout` that closes): the fast path may run.
fn idle(shared: &Shared, conn: &Conn, flow: Direction, closing: &[u64]) -> bool {
    closing.is_empty()
        && (shared.quiet() || !shared.faults().iter().any(|f| acts_on(f, conn, flow)))
}

/// `f` is a byte-stream fault on `flow` that this connection drew.
fn acts_on(f: &ProxyFault, conn: &Conn, flow: Direction) -> bool {
    f.effect.direction().is_some_and(|d| d.covers(flow)) && conn.applies(f)
}

/// The sending half of a pump, with its per-connection fault state.
struct Writer<'a, W> {
    wr: W,
    conn: &'a Conn,
    shared: &'a Shared,
    flow: Direction,
    changes: watch::Receiver<u64>,
    /// When the previous chunk was due: order is kept.
    last_due: Instant,
    /// When the next byte may go under `bandwidth`.
    pace: Instant,
    /// Bytes sent while each `limit-data` fault was active.
    sent: HashMap<u64, u64>,
    /// `timeout` faults that held this pump and close it when reverted.
    closing: Vec<u64>,
}

/// What the faults allow for the next piece of a chunk.
enum Step {
    /// Wait for a fault change.
    Hold,
    /// Wait until then, then look again; precisely for a delay.
    Until(Instant, bool),
    /// Send at most this many bytes; afterwards pause this long (slicer)
    /// and charge them to the pace at this rate (bandwidth).
    Send {
        max: usize,
        pause: Duration,
        rate: Option<u64>,
    },
    /// Close the connection.
    End(End),
}

impl<'a, W: AsyncWrite + Unpin> Writer<'a, W> {
    fn idle(&self) -> bool {
        idle(self.shared, self.conn, self.flow, &self.closing)
    }

    /// Counts `n` bytes sent, in the proxy's stats and against each
    /// `limit-data` among `faults`.
    fn count(&mut self, n: u64, faults: &[std::sync::Arc<ProxyFault>]) {
        self.counter().add(n);
        for f in faults {
            if matches!(f.effect, Effect::LimitData { .. }) {
                *self.sent.entry(f.key).or_default() += n;
            }
        }
    }

    /// The proxy's byte counter for this direction.
    fn counter(&self) -> &'a super::Counter {
        match self.flow {
            Direction::Upstream => &self.shared.stats.bytes_up,
            _ => &self.shared.stats.bytes_down,
        }
    }

    /// The reading side ended: close this direction, after any
    /// `slow-close`.
    async fn finish(&mut self) -> End {
        self.slow_close().await;
        let _ = self.wr.shutdown().await;
        End::Eof
    }

    fn active(&self) -> Vec<std::sync::Arc<ProxyFault>> {
        self.shared
            .faults()
            .iter()
            .filter(|f| acts_on(f, self.conn, self.flow))
            .cloned()
            .collect()
    }

    async fn send(&mut self, arrived: Instant, chunk: Bytes) -> Result<(), End> {
        let mut rest = chunk;
        // The delay is drawn once per chunk and fault set: a change to the
        // faults draws again (a reverted delay releases the chunk).
        let mut delayed: Option<(u64, Instant)> = None;
        while !rest.is_empty() {
            let version = *self.changes.borrow_and_update();
            let faults = self.active();
            if self
                .closing
                .iter()
                .any(|key| !faults.iter().any(|f| f.key == *key))
            {
                return Err(End::Close);
            }
            let due = match delayed {
                Some((v, due)) if v == version => due,
                _ => {
                    let delay: Duration = faults
                        .iter()
                        .filter_map(|f| match f.effect {
                            Effect::Delay {
                                latency, jitter, ..
                            } => Some(latency + f.jitter(jitter)),
                            _ => None,
                        })
                        .sum();
                    let due = if delay.is_zero() {
                        arrived
                    } else {
                        (arrived + delay).max(self.last_due)
                    };
                    delayed = Some((version, due));
                    due
                }
            };
            match self.step(&faults, due, rest.len()) {
                Step::Hold => {
                    if self.changes.changed().await.is_err() {
                        return Err(End::Close);
                    }
                }
                Step::Until(at, precise) => {
                    let wait = async {
                        if precise {
                            timer::sleep_until_precisely(at).await;
                        } else {
                            timer::sleep_until(at).await;
                        }
                    };
                    tokio::select! {
                        _ = wait => {}
                        r = self.changes.changed() => if r.is_err() { return Err(End::Close) },
                    }
                }
                Step::End(end) => return Err(end),
                Step::Send { max, pause, rate } => {
                    self.last_due = self.last_due.max(due);
                    let piece = rest.split_to(max.min(rest.len()));
                    if self.wr.write_all(&piece).await.is_err() {
                        return Err(End::Close);
                    }
                    let n = piece.len() as u64;
                    self.count(n, &faults);
                    if let Some(rate) = rate {
                        self.pace += Duration::from_secs_f64(n as f64 / rate as f64);
                    }
                    if !pause.is_zero() && !rest.is_empty() {
                        tokio::select! {
                            _ = timer::sleep(pause) => {}
                            r = self.changes.changed() => if r.is_err() { return Err(End::Close) },
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Decide what the faults allow next for a chunk due at `due` with
    /// `len` bytes left.
    fn step(&mut self, faults: &[std::sync::Arc<ProxyFault>], due: Instant, len: usize) -> Step {
        let now = Instant::now();
        let mut max = len;
        let mut rate: Option<u64> = None;
        let mut pause = Duration::ZERO;
        for f in faults {
            match f.effect {
                Effect::Timeout {
                    close_on_revert: true,
                    ..
                } => {
                    if !self.closing.contains(&f.key) {
                        self.closing.push(f.key);
                    }
                    return Step::Hold;
                }
                Effect::Blackhole { .. } | Effect::Timeout { .. } => return Step::Hold,
                Effect::LimitData { bytes, .. } => {
                    let left = bytes.saturating_sub(self.sent.get(&f.key).copied().unwrap_or(0));
                    if left == 0 {
                        return Step::End(End::Close);
                    }
                    max = max.min(usize::try_from(left).unwrap_or(usize::MAX));
                }
                Effect::Bandwidth { rate: r, .. } => {
                    rate = Some(rate.map_or(r, |old| old.min(r)).max(1));
                }
                Effect::Slicer {
                    average,
                    variation,
                    delay,
                    ..
                } => {
                    max = max.min(f.piece(average, variation));
                    pause = pause.max(delay);
                }
                _ => {}
            }
        }
        if due > now {
            return Step::Until(due, true);
        }
        if let Some(rate) = rate {
            if self.pace + PACE_SLACK < now {
                self.pace = now;
            }
            if self.pace > now {
                return Step::Until(self.pace, false);
            }
            // Pieces of ~10 ms worth keep slow links smooth.
            let piece = usize::try_from(rate / 100).unwrap_or(usize::MAX).max(1);
            max = max.min(piece);
        }
        Step::Send { max, pause, rate }
    }

    /// Hold back the close while a `slow-close` applies.
    async fn slow_close(&mut self) {
        let delay = self
            .active()
            .iter()
            .filter_map(|f| match f.effect {
                Effect::SlowClose { delay, .. } => Some(delay),
                _ => None,
            })
            .max();
        if let Some(delay) = delay {
            timer::sleep(delay).await;
        }
    }
}
