//! Any bytes given to the component loader yield a scenario or a load
//! error; never a panic or a crash of the engine.
#![no_main]

use std::sync::OnceLock;

fn engine() -> &'static firedrill::Engine {
    static ENGINE: OnceLock<firedrill::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| firedrill::EngineBuilder::new().build().expect("engine"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = engine().load(data, "fuzz.wasm");
});
