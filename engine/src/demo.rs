//! The demo drill that `firedrill demo` runs (and tests reuse).

use std::path::Path;

/// The demo's drill, as a user would write it: the demo service (`exe
/// demo-service`) as process target `api` on port `api`, and an HTTP proxy
/// `api-link` on port `link` in front of it.
pub fn drill_text(exe: &Path, api: u16, link: u16) -> String {
    format!(
        r#"# The drill `firedrill demo` runs. Each bundled scenario runs against it.
[policy]
max_fault_duration = "30s"
max_concurrent_faults = 4

[limits]
timeout = "60s"

[targets.api]
kind = "process"
command = "{exe}"
args = ["demo-service", "--listen", "127.0.0.1:{api}", "--token", "demo-token"]
restart = "always"
address = "127.0.0.1:{api}"
ready = {{ http = "/health" }}
grants = ["kill", "pause"]

[targets.api-link]
kind = "proxy"
mode = "http"
listen = "127.0.0.1:{link}"
upstream = "127.0.0.1:{api}"
grants = ["delay", "fail-auth", "http-error"]

[[steady_state]]
name = "api answers through the proxy"
target = "api-link"
http = "/health"
status = 200
max_latency = "1s"
phases = ["before", "after"]
after_grace = "10s"
"#,
        exe = exe.display()
    )
}
