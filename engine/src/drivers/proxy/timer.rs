//! The proxy's timers. On the connection threads of `proxy serve`
//! ([`super::serve_connections_on_threads`]) the runtimes have no time
//! driver: with one, every park of a thread (two per round trip on a quiet
//! connection) reads the clock twice and walks the timer wheel three times,
//! ~830 of ~5,760 instructions per round trip with no timer set
//! (docs/PERFORMANCE.md, issue 19, sixth look). A connection's timers
//! (delays, pacing, timeouts: faulted paths only) go to one timer thread
//! instead, whose expiry wakes the connection's task like any wake from
//! another thread. Elsewhere (the library, tests) they use the current
//! runtime's driver.

use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::time::Sleep;

static TIMER: OnceLock<Handle> = OnceLock::new();

/// Start the timer thread (once; later calls do nothing).
pub(super) fn start_thread() -> std::io::Result<()> {
    if TIMER.get().is_some() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    if TIMER.set(rt.handle().clone()).is_ok() {
        std::thread::Builder::new()
            .name("proxy-timer".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    }
    Ok(())
}

/// A sleep until `at`, on the timer thread if there is one.
pub(super) fn sleep_until(at: Instant) -> Sleep {
    let _timer = TIMER.get().map(Handle::enter);
    tokio::time::sleep_until(at.into())
}

/// A sleep of `duration` (see [`sleep_until`]).
pub(super) fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Sleep until `at`, to within tens of microseconds. tokio's timer has
/// 1 ms slots, and a parked runtime wakes up to another millisecond late,
/// so a plain sleep makes a 100 ms delay 100–102 ms. Sleep until 2 ms
/// before `at`, then yield to other tasks until it comes (used for delay
/// faults; pacing keeps plain sleeps).
pub(super) async fn sleep_until_precisely(at: Instant) {
    if let Some(coarse) = at.checked_sub(Duration::from_millis(2))
        && coarse > Instant::now()
    {
        sleep_until(coarse).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_on_a_runtime_without_a_time_driver() {
        start_thread().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let start = Instant::now();
        rt.block_on(async {
            sleep(Duration::from_millis(20)).await;
            sleep_until(Instant::now() + Duration::from_millis(10)).await;
        });
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
