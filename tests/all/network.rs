//! The byte-stream faults of a TCP proxy, each seen from a real client on
//! loopback: what arrives, when, and how the connection ends; and that a
//! revert leaves live connections usable where the fault allows.

use firedrill::drivers::proxy::{Direction, Effect, Proxy, ProxyConfig, ProxyFault, ProxyMode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

async fn proxy(upstream: SocketAddr) -> Arc<Proxy> {
    Proxy::start(ProxyConfig {
        name: "link".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        mode: ProxyMode::Tcp,
    })
    .await
    .unwrap()
}

fn fault(effect: Effect) -> ProxyFault {
    ProxyFault::new(effect, 1.0, None, 7)
}

async fn ping(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    s.write_all(b"ping").await.ok()?;
    let mut buf = [0u8; 4];
    timeout(within, s.read_exact(&mut buf)).await.ok()?.ok()?;
    assert_eq!(&buf, b"ping");
    Some(t.elapsed())
}

/// Read until EOF or error; the bytes, how it ended, and when.
async fn drain(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>, Duration, usize) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut reads = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Err(_) => panic!("no EOF within 10 s"),
            Ok(Ok(0)) => return (out, Ok(()), t.elapsed(), reads),
            Ok(Ok(n)) => {
                reads += 1;
                out.extend_from_slice(&buf[..n]);
            }
            Ok(Err(e)) => return (out, Err(e), t.elapsed(), reads),
        }
    }
}

#[tokio::test]
async fn bandwidth_limits_throughput_and_reverts() {
    let n = 200 * 1024;
    let upstream = firedrill_tests::sending_server(n).await;
    let p = proxy(upstream).await;
    let key = p.add_fault(fault(Effect::Bandwidth {
        rate: 400 * 1024,
        direction: Direction::Downstream,
    }));
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let (data, end, took, _) = drain(&mut s).await;
    end.unwrap();
    assert_eq!(data.len(), n);
    assert!(
        (0.4..0.65).contains(&took.as_secs_f64()),
        "200 KiB at 400 KiB/s takes 0.5 s, took {took:?}"
    );
    p.remove_fault(key);
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let (_, _, took, _) = drain(&mut s).await;
    assert!(
        took < Duration::from_millis(200),
        "unlimited again: {took:?}"
    );
}

#[tokio::test]
async fn blackhole_holds_data_and_revert_delivers_it() {
    let p = proxy(firedrill_tests::echo_server().await).await;
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    assert!(ping(&mut s, Duration::from_secs(2)).await.is_some());
    let key = p.add_fault(fault(Effect::Blackhole {
        direction: Direction::Upstream,
    }));
    s.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        timeout(Duration::from_millis(300), s.read_exact(&mut buf))
            .await
            .is_err(),
        "nothing comes back while the link is blackholed"
    );
    p.remove_fault(key);
    timeout(Duration::from_secs(2), s.read_exact(&mut buf))
        .await
        .expect("held bytes flow on revert")
        .unwrap();
    assert_eq!(&buf, b"held");
    assert!(ping(&mut s, Duration::from_secs(2)).await.is_some());
}

#[tokio::test]
async fn refuse_takes_the_listener_down_and_revert_brings_it_back() {
    let p = proxy(firedrill_tests::echo_server().await).await;
    let mut live = TcpStream::connect(p.local_addr()).await.unwrap();
    assert!(ping(&mut live, Duration::from_secs(2)).await.is_some());
    let key = p.add_fault(fault(Effect::Refuse));
    let refused = support_eventually_refused(p.local_addr()).await;
    assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);
    assert!(
        ping(&mut live, Duration::from_secs(2)).await.is_some(),
        "live connections are untouched"
    );
    p.remove_fault(key);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(s) = TcpStream::connect(p.local_addr()).await {
            again = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = again.expect("the same address listens again");
    assert!(ping(&mut again, Duration::from_secs(2)).await.is_some());
}

/// Connections made while the listener closes may be reset instead; wait
/// for the plain refusal.
async fn support_eventually_refused(addr: SocketAddr) -> std::io::ErrorKind {
    let mut last = None;
    for _ in 0..50 {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return e.kind(),
            other => last = Some(other.map(|_| ())),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not refused after 1 s: {last:?}");
}

#[tokio::test]
async fn reset_peer_resets_the_client_after_the_delay() {
    let p = proxy(firedrill_tests::echo_server().await).await;
    p.add_fault(fault(Effect::ResetPeer {
        after: Duration::from_millis(150),
        direction: Direction::Downstream,
    }));
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    assert!(
        ping(&mut s, Duration::from_secs(2)).await.is_some(),
        "data flows until the reset"
    );
    let (_, end, took, _) = drain(&mut s).await;
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn timeout_stops_data_then_closes() {
    let p = proxy(firedrill_tests::echo_server().await).await;
    p.add_fault(fault(Effect::Timeout {
        after: Duration::from_millis(200),
        direction: Direction::Both,
        close_on_revert: false,
    }));
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let t = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let (data, end, _, _) = drain(&mut s).await;
    assert!(data.is_empty(), "no data gets through");
    end.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn timeout_zero_holds_until_revert_and_keeps_the_connection() {
    let p = proxy(firedrill_tests::echo_server().await).await;
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let key = p.add_fault(fault(Effect::Timeout {
        after: Duration::ZERO,
        direction: Direction::Downstream,
        close_on_revert: false,
    }));
    assert!(ping(&mut s, Duration::from_millis(300)).await.is_none());
    p.remove_fault(key);
    // The held echo of the first ping arrives, then a new one round-trips.
    let mut buf = [0u8; 4];
    timeout(Duration::from_secs(2), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(ping(&mut s, Duration::from_secs(2)).await.is_some());
}

#[tokio::test]
async fn slow_close_delays_the_eof() {
    let upstream = firedrill_tests::sending_server(10).await;
    let p = proxy(upstream).await;
    p.add_fault(fault(Effect::SlowClose {
        delay: Duration::from_millis(300),
        direction: Direction::Downstream,
    }));
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let (data, end, took, _) = drain(&mut s).await;
    end.unwrap();
    assert_eq!(data.len(), 10, "the data comes at once");
    assert!(took >= Duration::from_millis(290), "EOF late: {took:?}");
}

#[tokio::test]
async fn slicer_cuts_data_into_delayed_pieces() {
    let upstream = firedrill_tests::sending_server(1000).await;
    let p = proxy(upstream).await;
    p.add_fault(fault(Effect::Slicer {
        average: 100,
        variation: 0,
        delay: Duration::from_millis(10),
        direction: Direction::Downstream,
    }));
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let (data, end, took, reads) = drain(&mut s).await;
    end.unwrap();
    assert_eq!(data, (0..1000).map(|i| i as u8).collect::<Vec<_>>());
    assert!(reads >= 8, "arrives in pieces: {reads} reads");
    assert!(took >= Duration::from_millis(90), "{took:?}");
}

#[tokio::test]
async fn limit_data_closes_after_exactly_n_bytes() {
    let upstream = firedrill_tests::sending_server(5000).await;
    let p = proxy(upstream).await;
    p.add_fault(fault(Effect::LimitData {
        bytes: 1234,
        direction: Direction::Downstream,
    }));
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    let (data, _, _, _) = drain(&mut s).await;
    assert_eq!(data, (0..1234).map(|i| i as u8).collect::<Vec<_>>());
}

#[tokio::test]
async fn connect_delay_holds_only_the_first_byte() {
    let p = proxy(firedrill_tests::echo_server().await).await;
    p.add_fault(fault(Effect::ConnectDelay {
        latency: Duration::from_millis(200),
        jitter: Duration::ZERO,
    }));
    let t = Instant::now();
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "the TCP handshake is not delayed"
    );
    let first = ping(&mut s, Duration::from_secs(2)).await.unwrap();
    assert!(first >= Duration::from_millis(180), "{first:?}");
    let second = ping(&mut s, Duration::from_secs(2)).await.unwrap();
    assert!(second < Duration::from_millis(100), "{second:?}");
}

/// Toxicity semantics: with probability p, a connection is affected or not
/// as a whole, and the same seed picks the same connections.
#[tokio::test]
async fn probability_picks_whole_connections_by_seed() {
    let upstream = firedrill_tests::echo_server().await;
    let mut picks = Vec::new();
    for _ in 0..2 {
        let p = proxy(upstream).await;
        p.add_fault(ProxyFault::new(
            Effect::Blackhole {
                direction: Direction::Both,
            },
            0.5,
            None,
            99,
        ));
        let mut pick = Vec::new();
        for _ in 0..16 {
            let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
            let first = ping(&mut s, Duration::from_millis(150)).await.is_some();
            if first {
                assert!(
                    ping(&mut s, Duration::from_millis(500)).await.is_some(),
                    "an unaffected connection stays unaffected"
                );
            }
            pick.push(first);
        }
        picks.push(pick);
    }
    let passed = picks[0].iter().filter(|p| **p).count();
    assert!((3..=13).contains(&passed), "about half pass: {passed}/16");
    assert_eq!(picks[0], picks[1], "same seed, same connections");
}

/// The same faults made by a Wasm scenario through the `link` import: the
/// client sees them while the scenario holds, and not after the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_faults_from_a_scenario_act_and_are_reverted() {
    use firedrill::history::RunStatus;
    use firedrill::{EngineBuilder, RunSpec};
    let engine = EngineBuilder::new().build().unwrap();
    let sender = firedrill_tests::sending_server(5000).await;
    let text = format!(
        "[targets.link]\nkind = \"proxy\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{sender}\"\ngrants = [\"limit-data\", \"refuse\"]\n"
    );
    let drill = firedrill::Drill::parse(&text, std::path::Path::new("link.toml")).unwrap();
    let targets = engine.start_targets(&drill.targets).await.unwrap();
    let addr = targets.get("link").unwrap().address().unwrap();
    let component = engine.load(firedrill_tests::LINK, "link").unwrap();
    let read_all = |addr: String| async move {
        let mut s = TcpStream::connect(&addr).await?;
        let (data, _, _, _) = drain(&mut s).await;
        Ok::<_, std::io::Error>(data.len())
    };

    for (fault, seen_during) in [("limit-data", "1000 bytes"), ("refuse", "refused")] {
        let mut spec = RunSpec::new(component.clone());
        spec.targets = targets.clone();
        spec.params = [("fault", fault), ("value", "1000"), ("hold", "1s")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let handle = engine.start(spec).unwrap();
        let mut observed = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match (fault, read_all(addr.clone()).await) {
                ("limit-data", Ok(1000)) => observed = Some("1000 bytes"),
                ("refuse", Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    observed = Some("refused")
                }
                _ => continue,
            }
            break;
        }
        assert_eq!(observed, Some(seen_during), "{fault} during the run");
        let run = handle.wait().await;
        assert_eq!(run.status, RunStatus::Passed, "{run:#?}");
        let mut after = None;
        for _ in 0..50 {
            if let Ok(n) = read_all(addr.clone()).await {
                after = Some(n);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(after, Some(5000), "{fault} reverted after the run");
    }

    // A kind the drill does not grant is refused before the run starts.
    let mut spec = RunSpec::new(component);
    spec.targets = targets.clone();
    spec.params = [("fault".to_string(), "bandwidth".to_string())].into();
    let run = engine.start(spec).unwrap().wait().await;
    assert_eq!(run.status, RunStatus::Refused, "{run:#?}");
    targets.shutdown().await;
}
