//! The HTTP/1.1 fast path: while no fault is active on the proxy, a
//! client's requests and their responses are relayed as they came, byte
//! for byte, in the connection's own task, over one upstream connection
//! kept alive beside it. Only the heads are parsed (with `httparse`), to
//! find where each message ends; nothing is copied into header maps, and
//! no task or channel stands between the two sockets (what a hyper server
//! plus a hyper client cost per request: issue 19).
//!
//! Anything else goes to the full proxy in [`super::http`], with the bytes
//! already read put back in front: a fault active at a request's start (the
//! connection then stays there), HTTP/2's preface, HTTP/1.0, upgrades,
//! `Expect`, request bodies in `Transfer-Encoding`, heads that do not
//! parse, an upstream that cannot be reached. So every fault acts from the
//! next request on, as it does on the full path, and every answer made
//! here (400, 502 …) is the full path's own.

use super::buffers;
use super::{Shared, http};
use bytes::{Buf, Bytes, BytesMut};
use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The largest head relayed here; larger ones go to the full path (hyper
/// answers 431 past its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a head, as hyper's default.
const MAX_HEADERS: usize = 100;

/// Serve one client connection: on the fast path while it can, then on
/// the full path.
pub(super) async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut relay = Relay {
        client,
        up: None,
        buf: BytesMut::new(),
        ubuf: BytesMut::new(),
    };
    if let Next::FullPath = relay.run(&shared).await {
        let Relay { client, buf, .. } = relay;
        http::serve(client, buf.freeze(), shared).await;
    }
}

enum Next {
    /// The connection is over.
    Done,
    /// Hand the connection, with the bytes in `buf`, to the full path.
    FullPath,
}

struct Relay {
    client: TcpStream,
    /// The upstream connection, kept alive between requests.
    up: Option<TcpStream>,
    /// Read from the client, not yet sent upstream.
    buf: BytesMut,
    /// Read from upstream, not yet sent to the client.
    ubuf: BytesMut,
}

/// What a request head says about its message.
struct RequestHead {
    len: usize,
    body: u64,
    head_method: bool,
    close: bool,
}

/// How a response's body ends.
#[derive(Debug, PartialEq)]
enum Framing {
    Length(u64),
    Chunked,
    /// At upstream's close (no length given).
    Close,
}

struct ResponseHead {
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
}

impl Relay {
    async fn run(&mut self, shared: &Shared) -> Next {
        loop {
            let req = loop {
                if !self.buf.is_empty() {
                    match parse_request(&self.buf) {
                        Ok(Some(req)) => break req,
                        Ok(None) if self.buf.len() < MAX_HEAD => {}
                        _ => return Next::FullPath,
                    }
                }
                match self.read_client().await {
                    Ok(0) | Err(_) => return Next::Done,
                    Ok(_) => {}
                }
            };
            // A fault active now acts on this request: the full path.
            if !shared.quiet() {
                return Next::FullPath;
            }
            if self.up.is_none() {
                match http::connect(shared).await {
                    Ok(up) => self.up = Some(up),
                    // The full path tries again and answers 502 if it fails.
                    Err(_) => return Next::FullPath,
                }
            }
            match self.request(&req).await {
                Ok(true) => {}
                Ok(false) => return Next::Done,
                Err(Broken::End) => return Next::Done,
                Err(Broken::Upstream(e)) => {
                    // Nothing of a response has reached the client yet.
                    self.up = None;
                    self.ubuf.clear();
                    let answer = http::bad_gateway_bytes(shared, &e);
                    if self.client.write_all(&answer).await.is_err() || req.close {
                        return Next::Done;
                    }
                }
            }
        }
    }

    /// Send the request upstream and its response back; whether the client
    /// connection goes on.
    async fn request(&mut self, req: &RequestHead) -> Result<bool, Broken> {
        let up = self.up.as_mut().expect("connected before");
        // The request: its head and as much of its body as was read, then
        // the rest of the body as it comes.
        let mut left = req.len as u64 + req.body;
        loop {
            let now = (self.buf.len() as u64).min(left) as usize;
            if now > 0 {
                up.write_all(&self.buf[..now])
                    .await
                    .map_err(|e| Broken::Upstream(format!("send: {e}")))?;
                self.buf.advance(now);
                left -= now as u64;
            }
            if left == 0 {
                break;
            }
            buffers::room(&mut self.buf);
            match self.client.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(Broken::End),
                Ok(_) => {}
            }
        }
        // The response: informational heads first, then the final one.
        let resp = loop {
            let resp = self.response_head().await?;
            if (100..200).contains(&resp.status) && resp.status != 101 {
                self.send_client(resp.len).await?;
                continue;
            }
            break resp;
        };
        let up = self.up.as_mut().expect("connected before");
        if resp.status == 101 {
            // Upgrades go the full path; a server switching anyway gets a
            // plain tunnel.
            self.client
                .write_all(&self.ubuf)
                .await
                .map_err(|_| Broken::End)?;
            let _ = tokio::io::copy_bidirectional(&mut self.client, up).await;
            return Ok(false);
        }
        let framing = if req.head_method || resp.status == 204 || resp.status == 304 {
            Framing::Length(0)
        } else {
            resp.framing
        };
        match framing {
            Framing::Length(n) => {
                let mut left = resp.len as u64 + n;
                while left > 0 {
                    if self.ubuf.is_empty() {
                        self.more_body().await?;
                    }
                    let now = (self.ubuf.len() as u64).min(left) as usize;
                    self.send_client(now).await?;
                    left -= now as u64;
                }
            }
            Framing::Chunked => {
                let mut chunks = Chunks::default();
                let mut start = resp.len;
                loop {
                    match chunks.scan(&self.ubuf[start..]) {
                        Ok(Some(end)) => {
                            self.send_client(start + end).await?;
                            break;
                        }
                        Ok(None) => {
                            let all = self.ubuf.len();
                            self.send_client(all).await?;
                            start = 0;
                            self.more_body().await?;
                        }
                        Err(()) => {
                            // Part of it may be sent: end both connections.
                            return Ok(false);
                        }
                    }
                }
            }
            Framing::Close => loop {
                let all = self.ubuf.len();
                self.send_client(all).await?;
                // Its end is the answer's end; a failure, a cut.
                if matches!(self.read_upstream().await, Ok(0) | Err(_)) {
                    return Ok(false);
                }
            },
        }
        if !self.ubuf.is_empty() {
            // Upstream said more than it was asked: do not trust the
            // connection with the next request.
            self.up = None;
            self.ubuf.clear();
        }
        if resp.close {
            self.up = None;
        }
        Ok(!(resp.close || req.close))
    }

    /// Read upstream until a whole response head is in `ubuf`.
    async fn response_head(&mut self) -> Result<ResponseHead, Broken> {
        loop {
            if !self.ubuf.is_empty() {
                match parse_response(&self.ubuf) {
                    Ok(Some(resp)) => return Ok(resp),
                    Ok(None) if self.ubuf.len() < MAX_HEAD => {}
                    Ok(None) => return Err(Broken::Upstream("response head too large".into())),
                    Err(e) => return Err(Broken::Upstream(format!("bad response: {e}"))),
                }
            }
            match self.read_upstream().await {
                Ok(0) => {
                    return Err(Broken::Upstream(
                        "connection closed before the response".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(Broken::Upstream(format!("receive: {e}"))),
            }
        }
    }

    /// Read more from upstream.
    async fn read_upstream(&mut self) -> io::Result<usize> {
        let up = self.up.as_mut().expect("connected before");
        buffers::room(&mut self.ubuf);
        up.read_buf(&mut self.ubuf).await
    }

    /// Read more of a body whose end is not reached yet: upstream's close
    /// or a failure cuts the answer short, which must reach the client as a
    /// cut, not as a 502 after part of it.
    async fn more_body(&mut self) -> Result<(), Broken> {
        match self.read_upstream().await {
            Ok(0) | Err(_) => Err(Broken::End),
            Ok(_) => Ok(()),
        }
    }

    /// Send the first `n` bytes of `ubuf` to the client.
    async fn send_client(&mut self, n: usize) -> Result<(), Broken> {
        if n > 0 {
            self.client
                .write_all(&self.ubuf[..n])
                .await
                .map_err(|_| Broken::End)?;
            self.ubuf.advance(n);
        }
        Ok(())
    }

    /// Read more of the client's bytes into `buf`. While it waits, the
    /// connection holds no buffer, and an idle upstream connection that
    /// closes (or speaks out of turn) is let go, to be opened anew for the
    /// next request.
    async fn read_client(&mut self) -> io::Result<usize> {
        let Relay {
            client,
            up,
            buf,
            ubuf,
        } = self;
        poll_fn(|cx| {
            // A read into a buffer taken for this poll: a pending read is
            // the registration that wakes the task (one visit to the
            // socket's waiter slot per wait).
            buffers::room(buf);
            let read = std::pin::pin!(client.read_buf(&mut *buf)).poll(cx);
            if read.is_ready() {
                return read;
            }
            // Idle: empty buffers go to the thread's spares.
            buffers::release(buf);
            buffers::release(ubuf);
            if let Some(idle) = up.as_ref()
                && idle.poll_read_ready(cx).is_ready()
            {
                let mut probe = [0u8; 1];
                match idle.try_read(&mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => *up = None,
                }
                // Wake again to look at the client (and a new upstream).
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }
}

enum Broken {
    /// The client is gone, or a response was cut after part of it was
    /// sent: end the connection.
    End,
    /// Upstream failed before any of the response was sent: answer 502.
    Upstream(String),
}

/// A whole request head at the start of `buf` this path relays, `None`
/// while incomplete; an error for what goes to the full path.
fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, ()> {
    // Left uninitialised: httparse fills what it uses (filling 100 empty
    // headers first cost a 3 KiB write per head).
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    if req.version != Some(1) {
        return Err(());
    }
    let mut body = None;
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).ok_or(())?;
            if body.is_some_and(|b| b != n) {
                return Err(());
            }
            body = Some(n);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Err(());
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Err(());
        }
    }
    Ok(Some(RequestHead {
        len,
        body: body.unwrap_or(0),
        head_method: req.method == Some("HEAD"),
        close,
    }))
}

/// A whole response head at the start of `buf`, `None` while incomplete.
fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut length = None;
    let mut chunked = None;
    // HTTP/1.0 closes unless it says otherwise.
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).ok_or("invalid content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length".into());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only as the last coding; any other ends at close.
            chunked = Some(
                tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")),
            );
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let code = resp.code.unwrap_or(0);
    // Both lengths (RFC 9112 §6.1): the chunks frame this response, and
    // neither connection is trusted with another message.
    close |= chunked.is_some() && length.is_some();
    let framing = match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) | (None, None) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
    };
    Ok(Some(ResponseHead {
        len,
        status: code,
        close,
        framing,
    }))
}

fn content_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The comma-separated tokens of a header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Where a chunked body ends (RFC 9112 §7.1), found as its bytes pass.
#[derive(Default)]
struct Chunks {
    state: Chunk,
    size: u64,
    /// The size line so far has a digit (a line without one is malformed,
    /// not a last chunk).
    digits: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
enum Chunk {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    Trailer,
    TrailerLine,
    EndLf,
}

impl Chunks {
    /// Scan the next bytes: the offset just past the body's end if it ends
    /// in them, `None` if it goes on, an error if it is malformed.
    fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                Chunk::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).expect("hex") as u64;
                        self.size = self.size.checked_mul(16).ok_or(())? + digit;
                        self.digits = true;
                    }
                    _ if !self.digits => return Err(()),
                    b';' | b' ' | b'\t' => self.state = Chunk::Extension,
                    b'\r' => self.state = Chunk::SizeLf,
                    _ => return Err(()),
                },
                Chunk::Extension => {
                    if b == b'\r' {
                        self.state = Chunk::SizeLf;
                    }
                }
                Chunk::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = if self.size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data
                    };
                }
                Chunk::Data => {
                    let take = (self.size).min((bytes.len() - i) as u64);
                    self.size -= take;
                    i += take as usize;
                    if self.size == 0 {
                        self.state = Chunk::DataCr;
                    }
                    continue;
                }
                Chunk::DataCr => {
                    if b != b'\r' {
                        return Err(());
                    }
                    self.state = Chunk::DataLf;
                }
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = Chunk::Size;
                    self.digits = false;
                }
                Chunk::Trailer => {
                    self.state = if b == b'\r' {
                        Chunk::EndLf
                    } else {
                        Chunk::TrailerLine
                    };
                }
                Chunk::TrailerLine => {
                    if b == b'\n' {
                        self.state = Chunk::Trailer;
                    }
                }
                Chunk::EndLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    return Ok(Some(i + 1));
                }
            }
            i += 1;
        }
        Ok(None)
    }
}

/// A client connection with the bytes already read from it put back in
/// front, for the full path.
pub(super) struct Rewound {
    pub(super) prefix: Bytes,
    pub(super) io: TcpStream,
}

impl AsyncRead for Rewound {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_they_end_in_any_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut c = Chunks::default();
            let (a, b) = body.split_at(split);
            let found = match c.scan(a).unwrap() {
                Some(at) => at,
                None => split + c.scan(b).unwrap().expect("ends"),
            };
            assert_eq!(found, end, "split at {split}");
        }
        assert_eq!(Chunks::default().scan(b"0\r\n\r\n"), Ok(Some(5)));
        assert!(Chunks::default().scan(b"zz\r\n").is_err());
        // A size line without a digit is not a last chunk.
        assert!(Chunks::default().scan(b"\r\n\r\n").is_err());
        assert!(Chunks::default().scan(b";ext\r\n\r\n").is_err());
        assert!(Chunks::default().scan(b"1\r\na\r\n\r\n").is_err());
        assert!(Chunks::default().scan(b"2\r\nabX").is_err());
        assert!(Chunks::default().scan(b"ffffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn only_plain_requests_take_the_fast_path() {
        let get = parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((get.body, get.close, get.head_method), (0, false, false));
        let post = parse_request(
            b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .unwrap()
        .unwrap();
        assert_eq!((post.len, post.body, post.close), (58, 5, true));
        assert!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n")
                .unwrap()
                .is_none()
        );
        for full_path in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert!(
                parse_request(full_path).is_err(),
                "{}",
                String::from_utf8_lossy(full_path)
            );
        }
    }

    #[test]
    fn responses_are_framed_as_rfc_9112_says() {
        let r = |s: &[u8]| parse_response(s).unwrap().unwrap();
        let ok = r(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        assert_eq!((ok.framing, ok.close), (Framing::Length(3), false));
        let chunked =
            r(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((chunked.framing, chunked.close), (Framing::Chunked, true));
        let eof = r(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(eof.framing, Framing::Close);
        let old = r(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(old.close);
        let kept = r(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!kept.close);
        let closing = r(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        assert_eq!((closing.status, closing.close), (204, true));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }
}

/// The fast path over real sockets, against an upstream that answers
/// exactly the bytes each test scripts (so what the client must see is
/// known byte for byte: the relay changes nothing).
#[cfg(test)]
mod relay_tests {
    use super::super::tests::http_proxy as proxy;
    use super::super::{Effect, ProxyFault};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// What the scripted upstream does after a request.
    #[derive(Clone, Copy)]
    enum Then {
        KeepOpen,
        Close,
        /// Close with a reset (RST), as a crashing server does.
        Reset,
    }

    #[derive(Default)]
    struct Seen {
        connections: usize,
        requests: Vec<Vec<u8>>,
    }

    /// An upstream answering each request (head plus `Content-Length`
    /// body) with the next scripted answer.
    async fn scripted(script: Vec<(&'static [u8], Then)>) -> (SocketAddr, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                log.lock().unwrap().connections += 1;
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(len) = whole_request(&buf) else {
                            let mut more = [0u8; 4096];
                            match s.read(&mut more).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&more[..n]),
                            }
                            continue;
                        };
                        log.lock()
                            .unwrap()
                            .requests
                            .push(buf.drain(..len).collect());
                        let Some((answer, then)) = script.lock().unwrap().next() else {
                            return;
                        };
                        s.write_all(answer).await.unwrap();
                        match then {
                            Then::KeepOpen => {}
                            Then::Close => return,
                            Then::Reset => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                let _ = s.set_zero_linger();
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn whole_request(buf: &[u8]) -> Option<usize> {
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
        let body = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        (buf.len() >= head + body).then_some(head + body)
    }

    async fn send(s: &mut TcpStream, bytes: &[u8]) {
        s.write_all(bytes).await.unwrap();
    }

    async fn expect(s: &mut TcpStream, want: &[u8]) {
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }

    async fn expect_end(s: &mut TcpStream) {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("the connection ends")
            .ok();
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nT: 1\r\n\r\n";
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n";
    const CLOSING: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";

    #[tokio::test]
    async fn every_framing_goes_through_one_kept_alive_connection_unchanged() {
        let mut hinted = EARLY_HINTS.to_vec();
        hinted.extend_from_slice(OK);
        let hinted: &'static [u8] = hinted.leak();
        let (upstream, seen) = scripted(vec![
            (OK, Then::KeepOpen),
            (CHUNKED, Then::KeepOpen),
            (HEAD, Then::KeepOpen),
            (NO_CONTENT, Then::KeepOpen),
            (OK, Then::KeepOpen),
            (hinted, Then::KeepOpen),
            (CLOSING, Then::KeepOpen),
        ])
        .await;
        let proxy = proxy(upstream).await;
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, OK).await;
        // A body that comes after its head, in two pieces.
        send(
            &mut s,
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        send(&mut s, b"world").await;
        expect(&mut s, CHUNKED).await;
        // No body after a HEAD's or a 204's head; then two requests in one
        // write, and an informational head before a final one.
        send(&mut s, b"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, HEAD).await;
        send(
            &mut s,
            b"DELETE /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        expect(&mut s, NO_CONTENT).await;
        expect(&mut s, OK).await;
        send(&mut s, b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, hinted).await;
        // Upstream closes: so does the client connection, after the answer.
        send(&mut s, b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, CLOSING).await;
        expect_end(&mut s).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.connections, 1, "one upstream connection, kept alive");
        let paths: Vec<String> = seen
            .requests
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(
            paths[1],
            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhelloworld"
        );
        assert_eq!(paths.len(), 7, "{paths:?}");
    }

    #[tokio::test]
    async fn a_fault_reaches_a_kept_alive_connection_at_its_next_request() {
        let (upstream, _) = scripted(vec![(OK, Then::KeepOpen), (OK, Then::KeepOpen)]).await;
        let proxy = proxy(upstream).await;
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, OK).await;
        let key = proxy.add_fault(ProxyFault::new(
            Effect::HttpError {
                status: 503,
                body: "down".into(),
                headers: Vec::new(),
            },
            1.0,
            None,
            1,
        ));
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, b"HTTP/1.1 503 Service Unavailable\r\n").await;
        let mut rest = [0u8; 512];
        let n = s.read(&mut rest).await.unwrap();
        assert!(
            rest[..n].ends_with(b"down"),
            "{:?}",
            String::from_utf8_lossy(&rest[..n])
        );
        proxy.remove_fault(key);
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, b"HTTP/1.1 200 OK\r\n").await;
    }

    #[tokio::test]
    async fn an_upstream_connection_closed_while_idle_is_opened_anew() {
        let (upstream, seen) = scripted(vec![(OK, Then::Close), (OK, Then::Close)]).await;
        let proxy = proxy(upstream).await;
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        for _ in 0..2 {
            send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
            expect(&mut s, OK).await;
            // Upstream's close reaches the proxy while the client thinks.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen.lock().unwrap().connections, 2);
    }

    #[tokio::test]
    async fn upstream_failures_answer_502_or_cut_the_answer_short() {
        // Nothing listens: the full path's 502.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = gone.local_addr().unwrap();
        drop(gone);
        let p = proxy(addr).await;
        let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, b"HTTP/1.1 502 Bad Gateway\r\n").await;
        // Upstream hangs up before answering: a 502 from the fast path,
        // and the client connection goes on; then an answer cut short
        // ends the client connection with what came.
        let (upstream, _) = scripted(vec![
            (b"", Then::Close),
            (OK, Then::KeepOpen),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
                Then::Close,
            ),
        ])
        .await;
        let p = proxy(upstream).await;
        let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut head = [0u8; 512];
        let n = s.read(&mut head).await.unwrap();
        let text = String::from_utf8_lossy(&head[..n]);
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
        assert!(text.contains("\"error\":\"bad_gateway\""), "{text}");
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, OK).await;
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf").await;
        expect_end(&mut s).await;
    }

    /// Many requests and answers of every framing, each written in random
    /// pieces (requests sometimes several in one write), over one client
    /// connection: every byte arrives, in order, unchanged, through one
    /// upstream connection.
    #[tokio::test]
    async fn random_pieces_and_pipelines_arrive_byte_for_byte() {
        use rand::rngs::ChaCha8Rng;
        use rand::{RngExt, SeedableRng};
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        let (mut requests, mut answers) = (Vec::new(), Vec::new());
        for i in 0..150 {
            let body: Vec<u8> = (0..rng.random_range(0..3000usize))
                .map(|j| (i + j) as u8)
                .collect();
            let (request, head_only) = match rng.random_range(0..3) {
                0 => (
                    format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
                    false,
                ),
                1 => (
                    format!("HEAD /{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
                    true,
                ),
                _ => {
                    let mut r = format!(
                        "POST /{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    (r, false)
                }
            };
            let mut answer = Vec::new();
            if rng.random_range(0..5) == 0 {
                answer.extend_from_slice(EARLY_HINTS);
            }
            match rng.random_range(0..3) {
                0 if !head_only => {
                    answer.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    );
                    for piece in body.chunks(rng.random_range(1..700usize)) {
                        answer.extend_from_slice(format!("{:x};n=1\r\n", piece.len()).as_bytes());
                        answer.extend_from_slice(piece);
                        answer.extend_from_slice(b"\r\n");
                    }
                    answer.extend_from_slice(b"0\r\nX-Sum: 1\r\n\r\n");
                }
                1 => answer.extend_from_slice(NO_CONTENT),
                _ => {
                    answer.extend_from_slice(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    );
                    if !head_only {
                        answer.extend_from_slice(&body);
                    }
                }
            }
            requests.push(request);
            answers.push(answer);
        }
        // The upstream reads each request whole, then answers it in pieces.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let (expected, script) = (requests.concat(), answers.clone());
        let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
        let mut pieces = ChaCha8Rng::seed_from_u64(7);
        let served = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut seen = Vec::new();
            for (size, answer) in sizes.into_iter().zip(script) {
                let mut request = vec![0u8; size];
                s.read_exact(&mut request).await.unwrap();
                seen.extend_from_slice(&request);
                let mut rest = &answer[..];
                while !rest.is_empty() {
                    let n = pieces.random_range(1..=rest.len().min(900));
                    s.write_all(&rest[..n]).await.unwrap();
                    rest = &rest[n..];
                    tokio::task::yield_now().await;
                }
            }
            let more = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
            (seen, more.is_err())
        });
        let proxy = proxy(upstream).await;
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (mut rd, mut wr) = s.split();
        let all = requests.concat();
        let mut pieces = ChaCha8Rng::seed_from_u64(11);
        let write = async {
            let mut rest = &all[..];
            while !rest.is_empty() {
                let n = pieces.random_range(1..=rest.len().min(4000));
                wr.write_all(&rest[..n]).await.unwrap();
                rest = &rest[n..];
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        };
        let want = answers.concat();
        let mut got = vec![0u8; want.len()];
        let read = tokio::time::timeout(Duration::from_secs(20), rd.read_exact(&mut got));
        let ((), read) = tokio::join!(write, read);
        read.expect("every answer in time").unwrap();
        assert!(got == want, "the answers changed on the way");
        let (seen, one_connection) = served.await.unwrap();
        assert!(seen == expected, "the requests changed on the way");
        assert!(one_connection, "a second upstream connection was opened");
    }

    /// An answer that ends at upstream's close, reset partway: the client
    /// gets what came, then the end — never a 502 after part of an answer.
    #[tokio::test]
    async fn an_answer_ended_by_close_and_cut_by_a_reset_is_not_followed_by_a_502() {
        const UNTIL_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\n\r\npartial";
        let (upstream, _) = scripted(vec![(UNTIL_CLOSE, Then::Reset)]).await;
        let proxy = proxy(upstream).await;
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        send(&mut s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
        expect(&mut s, UNTIL_CLOSE).await;
        expect_end(&mut s).await;
    }
}
