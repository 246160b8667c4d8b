//! A valid component of a different world (`test:other/other`), made
//! without the SDK: the engine must refuse to load it as a scenario.

wit_bindgen::generate!({
    world: "other",
    path: "wit",
});

struct Other;

impl Guest for Other {
    fn hello() -> String {
        "hello from another world".to_owned()
    }
}

export!(Other);
