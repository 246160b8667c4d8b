use crate::history::EventKind;
use crate::runtime::RunState;
use crate::runtime::bindings::GuestError;
use crate::runtime::bindings::firedrill::scenario::host::{Host, Level};
use serde_json::json;
use std::time::Duration;

/// Log lines and marks are cut here so one call cannot flood history.
const MAX_TEXT: usize = 16 * 1024;

fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("… (cut)");
    }
    s
}

impl Host for RunState {
    async fn log(&mut self, level: Level, message: String) {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        if !ctx.charge_log(message.len().min(MAX_TEXT)) {
            return;
        }
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
        .to_string();
        self.ctx.recorder.record(EventKind::Log {
            level,
            message: cut(message),
        });
    }

    async fn sleep(&mut self, d: u64) -> Result<(), GuestError> {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let d = Duration::from_nanos(d);
        let result = tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.ctx.stop_token().cancelled() => Err(GuestError::Halted),
        };
        self.ctx
            .call("host.sleep", json!({"ns": d.as_nanos() as u64}), &result);
        result
    }

    async fn now(&mut self) -> u64 {
        self.ctx.elapsed().as_nanos() as u64
    }

    async fn random(&mut self) -> u64 {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        let v = self.ctx.random();
        self.ctx.call::<_, ()>("host.random", json!({}), &Ok(v));
        v
    }

    async fn params(&mut self) -> Vec<(String, String)> {
        self.ctx.params()
    }

    async fn param(&mut self, name: String) -> Option<String> {
        self.ctx.param(&name)
    }

    async fn event(&mut self, name: String, detail: String) {
        let ctx = self.ctx.clone();
        ctx.throttle().await;
        if !ctx.charge_log((name.len() + detail.len()).min(2 * MAX_TEXT)) {
            return;
        }
        self.ctx.recorder.record(EventKind::Mark {
            name: cut(name),
            detail: cut(detail),
        });
    }
}
