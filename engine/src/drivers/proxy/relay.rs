//! The relay: while a proxy has no fault at all, a TCP connection's bytes
//! go through a plain edge-triggered `epoll` loop on a thread of its own
//! (one per proxy thread, [`super::serve_connections_on_threads`]), as
//! nginx relays: read, write, no task, no waker, no lock. tokio's
//! machinery cost ~0.7 µs of user time per round trip over this
//! (docs/PERFORMANCE.md, issue 19).
//!
//! The connection's tokio task stays, waiting: the faults' news still
//! reaches it (`Watch`), and it then asks the relay to [`Msg::Look`]. The
//! relay checks the proxy's count of faults before every write and every
//! close, and on the first fault (or the task's asking) gives the
//! connection back, with the bytes it read and has not written, to the
//! task, which runs it through the fault path (`tcp.rs`). A connection never
//! comes back to the relay. When the task ends (the proxy stops), the relay
//! closes the connection.

use super::buffers::CHUNK;
use super::{Shared, Watch};
use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The token of the relay's waker; connections use `slot * 2 + side`.
const WAKE: Token = Token(usize::MAX);

/// The most spare read buffers the relay keeps.
const KEEP: usize = 8;

/// A relay thread, as the tasks that hand it connections see it.
pub(super) struct Relay {
    inbox: Mutex<Vec<Msg>>,
    waker: Waker,
    /// Cleared if the thread had to stop: connections then stay with
    /// their tasks.
    alive: AtomicBool,
}

enum Msg {
    Carry(Box<Carried>),
    /// The faults changed: give the connection back if any is active.
    Look(Arc<Link>),
    /// The task ended: close the connection.
    Close(Arc<Link>),
}

/// What ties a relayed connection to its task.
pub(super) struct Link {
    /// The connection's place in the relay (`usize::MAX` before it has
    /// one).
    slot: AtomicUsize,
}

/// A connection given back to its task.
pub(super) struct Back {
    pub(super) client: TcpStream,
    pub(super) upstream: TcpStream,
    /// Each direction's state (client → upstream first).
    pub(super) flows: [Rest; 2],
}

/// What a direction had when its connection was given back.
#[derive(Default)]
pub(super) struct Rest {
    /// Read and not yet written.
    pub(super) pending: Bytes,
    /// Its source ended and its destination was shut down: done.
    pub(super) done: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Relay>>> = const { RefCell::new(None) };
}

/// The relay of this thread's connections, if it has one.
pub(super) fn current() -> Option<Arc<Relay>> {
    CURRENT
        .try_with(|c| c.borrow().clone())
        .ok()
        .flatten()
        .filter(|r| r.alive.load(Ordering::Relaxed))
}

/// Start a relay thread named `name`; connections of the calling thread go
/// to it from now on.
pub(super) fn start(name: String) -> io::Result<Arc<Relay>> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let relay = Arc::new(Relay {
        inbox: Mutex::default(),
        waker,
        alive: AtomicBool::new(true),
    });
    let mut thread = Thread {
        poll,
        relay: relay.clone(),
        conns: Vec::new(),
        free: Vec::new(),
        spare: Vec::new(),
    };
    std::thread::Builder::new()
        .name(name)
        .spawn(move || thread.run())?;
    Ok(relay)
}

/// Use `relay` for connections served on this thread.
pub(super) fn set_current(relay: Arc<Relay>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(relay));
}

impl Relay {
    fn send(&self, msg: Msg) {
        let first = {
            let mut inbox = self.inbox.lock().unwrap();
            // The thread clears `alive` under this lock as it takes its
            // last messages: after that, nothing would read this one.
            if !self.alive.load(Ordering::Relaxed) {
                drop(inbox);
                if let Msg::Carry(c) = msg {
                    let Carried { sockets, back, .. } = *c;
                    let [client, upstream] = sockets.map(|s| s.stream);
                    let _ = back.send(Back {
                        client,
                        upstream,
                        flows: Default::default(),
                    });
                }
                return;
            }
            inbox.push(msg);
            inbox.len() == 1
        };
        // A non-empty inbox has a wake-up on its way already.
        if first {
            let _ = self.waker.wake();
        }
    }

    /// Relay `client` ↔ `upstream` until the connection ends (`None`) or a
    /// fault is active (the connection, given back). While waiting, every
    /// change to the proxy's faults (`watch`) asks the relay to look.
    /// Dropping the future closes the connection.
    pub(super) async fn carry(
        &self,
        client: TcpStream,
        upstream: TcpStream,
        shared: Arc<Shared>,
        watch: &Watch<'_>,
    ) -> Option<Back> {
        let link = Arc::new(Link {
            slot: AtomicUsize::new(usize::MAX),
        });
        let (tx, mut rx) = oneshot::channel();
        self.send(Msg::Carry(Box::new(Carried {
            sockets: [Socket::new(client), Socket::new(upstream)],
            flows: [Flow::default(), Flow::default()],
            shared,
            link: link.clone(),
            back: tx,
        })));
        // Closes the connection if this future is dropped first.
        struct Guard<'a>(&'a Relay, Option<Arc<Link>>);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if let Some(link) = self.1.take() {
                    self.0.send(Msg::Close(link));
                }
            }
        }
        let mut guard = Guard(self, Some(link));
        loop {
            tokio::select! {
                back = &mut rx => {
                    guard.1 = None;
                    return back.ok();
                }
                () = watch.changed() => {
                    let link = guard.1.clone().expect("held until the end");
                    self.send(Msg::Look(link));
                }
            }
        }
    }
}

/// One side's socket in the relay.
struct Socket {
    stream: TcpStream,
    /// Known readable (since the last edge, until a read comes back short).
    readable: bool,
    /// The peer closed its side (or the socket failed): reads never wait
    /// again, and no edge will say so again.
    closed: bool,
    /// Known writable (until a write would block).
    writable: bool,
}

/// One direction: bytes read from one socket and not yet written to the
/// other.
#[derive(Default)]
struct Flow {
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    /// The source ended.
    eof: bool,
    /// The destination was shut down after `eof`.
    done: bool,
}

/// A connection in the relay.
struct Carried {
    /// Client, upstream.
    sockets: [Socket; 2],
    /// Client → upstream, upstream → client.
    flows: [Flow; 2],
    shared: Arc<Shared>,
    link: Arc<Link>,
    back: oneshot::Sender<Back>,
}

/// What driving a connection came to.
enum Out {
    /// Waiting for the sockets.
    Waiting,
    /// Both directions done, or a write failed: close it.
    Close,
    /// A fault is active: give it back.
    Back,
}

struct Thread {
    poll: Poll,
    relay: Arc<Relay>,
    conns: Vec<Option<Box<Carried>>>,
    free: Vec<usize>,
    spare: Vec<Box<[u8]>>,
}

impl Thread {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut ready = Vec::new();
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                // Never seen; the connections go back to their tasks, which
                // can serve them without the relay.
                tracing::error!(
                    "proxy relay: cannot wait for sockets: {e}; handing its connections back"
                );
                let msgs = {
                    let mut inbox = self.relay.inbox.lock().unwrap();
                    self.relay.alive.store(false, Ordering::Relaxed);
                    std::mem::take(&mut *inbox)
                };
                for msg in msgs {
                    self.receive(msg);
                }
                for slot in 0..self.conns.len() {
                    self.give_back(slot);
                }
                return;
            }
            let mut inbox = false;
            for event in events.iter() {
                if event.token() == WAKE {
                    inbox = true;
                    continue;
                }
                let (slot, side) = (event.token().0 >> 1, event.token().0 & 1);
                let Some(Some(c)) = self.conns.get_mut(slot) else {
                    continue;
                };
                let s = &mut c.sockets[side];
                // A closed or failed socket reads (0 or the error) and
                // writes (the error) at once: let both find out.
                s.closed |= event.is_error() || event.is_read_closed();
                s.readable |= event.is_readable() || s.closed;
                s.writable |= event.is_writable() || event.is_error() || event.is_write_closed();
                ready.push(slot);
            }
            if inbox {
                let msgs = std::mem::take(&mut *self.relay.inbox.lock().unwrap());
                for msg in msgs {
                    self.receive(msg);
                }
            }
            ready.sort_unstable();
            ready.dedup();
            for slot in ready.drain(..) {
                self.drive(slot);
            }
        }
    }

    fn receive(&mut self, msg: Msg) {
        match msg {
            Msg::Carry(c) => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.conns.push(None);
                    self.conns.len() - 1
                });
                c.link.slot.store(slot, Ordering::Relaxed);
                for (side, s) in c.sockets.iter().enumerate() {
                    let fd = s.stream.as_raw_fd();
                    let registered = self.poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(slot * 2 + side),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if registered.is_err() {
                        // Back to the task, which serves it as before.
                        self.conns[slot] = Some(c);
                        self.give_back(slot);
                        return;
                    }
                }
                self.conns[slot] = Some(c);
                // Both sockets report their state with their first edge.
            }
            Msg::Look(link) => {
                if let Some(slot) = self.find(&link)
                    && self.conns[slot].as_ref().is_some_and(|c| !c.shared.quiet())
                {
                    self.give_back(slot);
                }
            }
            Msg::Close(link) => {
                if let Some(slot) = self.find(&link) {
                    self.remove(slot);
                }
            }
        }
    }

    /// The slot of the connection `link` ties, if the relay still has it.
    fn find(&self, link: &Arc<Link>) -> Option<usize> {
        let slot = link.slot.load(Ordering::Relaxed);
        let c = self.conns.get(slot)?.as_ref()?;
        Arc::ptr_eq(&c.link, link).then_some(slot)
    }

    fn drive(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let mut out = Out::Waiting;
        for flow in 0..2 {
            out = c.forward(flow, &mut self.spare);
            if !matches!(out, Out::Waiting) {
                break;
            }
        }
        match out {
            Out::Waiting if c.flows.iter().all(|f| f.done) => self.remove(slot),
            Out::Waiting => {}
            Out::Close => self.remove(slot),
            Out::Back => self.give_back(slot),
        }
    }

    /// Close the connection in `slot` (its task then ends).
    fn remove(&mut self, slot: usize) {
        if let Some(c) = self.conns[slot].take() {
            self.free.push(slot);
            for f in c.flows {
                keep(&mut self.spare, f.buf);
            }
        }
    }

    /// Give the connection in `slot` back to its task, with what it read
    /// and has not written.
    fn give_back(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].take() else {
            return;
        };
        self.free.push(slot);
        let Carried {
            sockets: [client, upstream],
            flows,
            back,
            ..
        } = *c;
        for s in [&client, &upstream] {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&s.stream.as_raw_fd()));
        }
        let flows = flows.map(|f| {
            let rest = Rest {
                pending: match &f.buf {
                    Some(buf) => Bytes::copy_from_slice(&buf[f.start..f.end]),
                    None => Bytes::new(),
                },
                done: f.done,
            };
            keep(&mut self.spare, f.buf);
            rest
        });
        // A task that is gone closes the sockets with the message.
        let _ = back.send(Back {
            client: client.stream,
            upstream: upstream.stream,
            flows,
        });
    }
}

impl Socket {
    fn new(stream: TcpStream) -> Socket {
        Socket {
            stream,
            readable: false,
            closed: false,
            writable: false,
        }
    }
}

impl Carried {
    /// Move direction `flow`'s bytes (0: client → upstream, 1: upstream →
    /// client) as far as the sockets allow, taking read buffers from
    /// `spare` and putting them back when the direction goes idle.
    fn forward(&mut self, flow: usize, spare: &mut Vec<Box<[u8]>>) -> Out {
        let (src, dst) = (flow, 1 - flow);
        let counter = match flow {
            0 => &self.shared.stats.bytes_up,
            _ => &self.shared.stats.bytes_down,
        };
        let f = &mut self.flows[flow];
        loop {
            if f.start < f.end {
                if !self.sockets[dst].writable {
                    return Out::Waiting;
                }
                if !self.shared.quiet() {
                    return Out::Back;
                }
                let buf = f.buf.as_ref().expect("bytes are in a buffer");
                match (&self.sockets[dst].stream).write(&buf[f.start..f.end]) {
                    Ok(n) => {
                        f.start += n;
                        counter.add(n as u64);
                        if f.start == f.end {
                            (f.start, f.end) = (0, 0);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.sockets[dst].writable = false;
                        return Out::Waiting;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Out::Close,
                }
                continue;
            }
            if f.eof {
                if !f.done {
                    // A `slow-close` applies to the close too.
                    if !self.shared.quiet() {
                        return Out::Back;
                    }
                    let _ = self.sockets[dst].stream.shutdown(Shutdown::Write);
                    f.done = true;
                }
                release(f, spare);
                return Out::Waiting;
            }
            if !self.sockets[src].readable {
                release(f, spare);
                return Out::Waiting;
            }
            let buf = f.buf.get_or_insert_with(|| {
                spare
                    .pop()
                    .unwrap_or_else(|| vec![0; CHUNK].into_boxed_slice())
            });
            match (&self.sockets[src].stream).read(buf) {
                Ok(0) => f.eof = true,
                Ok(n) => {
                    f.end = n;
                    // A short read drained the socket: the next bytes
                    // bring an edge of their own. Not so the end, if it
                    // came with these bytes: its edge was this one.
                    if n < buf.len() && !self.sockets[src].closed {
                        self.sockets[src].readable = false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.sockets[src].readable = false;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Reset by the peer: as an end of its bytes, as the fast
                // path takes it.
                Err(_) => f.eof = true,
            }
        }
    }
}

/// An idle direction's empty buffer goes back to the spares.
fn release(f: &mut Flow, spare: &mut Vec<Box<[u8]>>) {
    if f.start == f.end {
        keep(spare, f.buf.take());
    }
}

/// `buf` goes to the spares, unless enough are kept.
fn keep(spare: &mut Vec<Box<[u8]>>, buf: Option<Box<[u8]>>) {
    if let Some(buf) = buf
        && spare.len() < KEEP
    {
        spare.push(buf);
    }
}
