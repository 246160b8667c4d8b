//! Any bytes given to the component loader yield a scenario or a load
//! error; never a panic or a crash of the engine.
//!
//! Cheap enough to explore: the seeds (tests/fuzz/seeds/component_loader,
//! built into corpus/component_loader) are components of a few hundred
//! bytes that reach each outcome of `load` (a scenario, the wrong world,
//! an unknown import, invalid), so most inputs compile in a millisecond
//! instead of the ~150 ms a Rust guest takes. The engine keeps every
//! component it loaded, so a fresh one replaces it every 1,024 inputs to
//! bound memory.
#![no_main]

use std::cell::RefCell;

thread_local! {
    static ENGINE: RefCell<Option<(firedrill::Engine, u32)>> = const { RefCell::new(None) };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ENGINE.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(_, n)| *n >= 1024) {
            *slot = None;
            *slot = Some((firedrill::EngineBuilder::new().build().expect("engine"), 0));
        }
        let (engine, n) = slot.as_mut().unwrap();
        *n += 1;
        let _ = engine.load(data, "fuzz.wasm");
    });
});
