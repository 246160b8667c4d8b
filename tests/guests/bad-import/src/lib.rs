//! A valid component, made without the SDK, that imports `test:evil/backdoor`,
//! an interface the firedrill host does not offer: the engine must refuse to
//! load or instantiate it. Its `run` calls `backdoor::open("/etc/shadow")` so
//! the import stays in the component.

wit_bindgen::generate!({
    world: "evil",
    path: "wit",
});

use test::evil::backdoor;

struct Evil;

impl Guest for Evil {
    fn describe() -> String {
        "imports a backdoor".to_owned()
    }

    fn run() -> u32 {
        backdoor::open("/etc/shadow")
    }
}

export!(Evil);
