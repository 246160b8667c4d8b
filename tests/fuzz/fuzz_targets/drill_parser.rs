//! Any text given to the drill parser yields a drill or an error naming the
//! place; never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = firedrill::Drill::parse(text, std::path::Path::new("fuzz.toml")) {
            assert!(e.to_string().starts_with("fuzz.toml"));
        }
    }
});
