//! The one place host bindings are generated from `wit/`.

wasmtime::component::bindgen!({
    world: "scenario",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
    with: {
        "firedrill:scenario/faults.fault": crate::run::FaultRep,
    },
});

pub(crate) use self::firedrill::scenario::types::Error as GuestError;
