//! TCP mode: two pumps per connection. Each pump reads chunks, stamps them
//! with their arrival time, and a writer sends each chunk at
//! `arrival + delay` (never before the previous one, so order holds).

use super::{Direction, Shared};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const CHUNK: usize = 16 * 1024;

pub(super) async fn serve(client: TcpStream, shared: Arc<Shared>) {
    // An unreachable upstream closes the client's connection, as a real
    // link would.
    let Ok(upstream) = TcpStream::connect(&shared.upstream).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::join!(
        pump(cr, uw, &shared, Direction::Upstream),
        pump(ur, cw, &shared, Direction::Downstream),
    );
}

async fn pump<R, W>(mut rd: R, mut wr: W, shared: &Shared, flow: Direction)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(64);
    let reader = async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx
                        .send((Instant::now(), buf.split().freeze()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut last = Instant::now();
        while let Some((arrived, chunk)) = rx.recv().await {
            // Read the faults when the chunk is due to go, not when it
            // arrived: a revert releases every chunk still queued.
            if let Some(delay) = shared.delay(flow) {
                let at = (arrived + delay).max(last);
                last = at;
                tokio::time::sleep_until(at.into()).await;
            }
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}
