//! The scenario library (`scenarios/`, bundled) against real third-party
//! services, probed in their own protocols.

use crate::support::*;
use std::io::{Read, Write};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A real client's `PING` to Redis at `addr`.
fn redis_ping(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// `dependency-outage` against Debian's redis-server behind a TCP proxy,
/// probed with Redis's own `PING`/`+PONG`: in `refuse` and `blackhole`
/// mode the probe sees the outage, Redis answers again after it, and the
/// recovery time is measured; the engine stops its Redis at the end.
#[test]
fn dependency_outage_cuts_off_a_real_redis_and_measures_its_return() {
    let redis = firedrill_tests::debian_program("/usr/bin/redis-server", &["redis-server"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let drill = dir.path().join("drill.toml");
    std::fs::write(
        &drill,
        format!(
            r#"[scenario]
bundled = "dependency-outage"
params = {{ link = "redis-link", probe = "exchange", send = "PING\r\n", expect = "+PONG", outage = "1s", interval = "200ms", probe_timeout = "300ms" }}

[targets.redis]
kind = "process"
command = "{}"
args = ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
address = "127.0.0.1:{port}"
ready = {{ tcp = true }}

[targets.redis-link]
kind = "proxy"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port}"
grants = ["refuse", "blackhole"]
"#,
            redis.display()
        ),
    )
    .unwrap();
    for mode in ["refuse", "blackhole"] {
        let o = firedrill(&data)
            .arg("run")
            .arg(&drill)
            .args(["--param", &format!("mode={mode}")])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains(&format!("{mode} outage of `redis-link`")), "{t}");
        assert!(t.contains("recovery-time"), "{t}");
        assert!(!t.contains("did not reach the probe"), "{t}");
        let shown = text(&firedrill(&data).arg("show").output().unwrap());
        assert!(shown.contains("outage-seen"), "{shown}");
        assert!(
            shown.contains("probes.tcp-exchange(") && shown.contains("expect=+PONG"),
            "{shown}"
        );
    }
    // The proxy is gone with the run; Redis itself was stopped by the
    // engine at the end of the run (a spawned target).
    assert!(!redis_ping(&format!("127.0.0.1:{port}")));
}
