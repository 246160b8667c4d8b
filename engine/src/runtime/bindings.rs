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

/// Components built against `firedrill:scenario@0.1.0` (`engine/wit/0.1.0`).
/// Its interfaces are today's, so they map onto the current bindings (and
/// the linker's semver matching links them); only the world's own types
/// differ: 0.1.0's `param-spec` has no `secret`.
pub(crate) mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "scenario",
        path: "wit/0.1.0",
        imports: { default: async },
        exports: { default: async },
        with: {
            "firedrill:scenario/types@0.1.0": super::firedrill::scenario::types,
            "firedrill:scenario/faults@0.1.0": super::firedrill::scenario::faults,
            "firedrill:scenario/probes@0.1.0": super::firedrill::scenario::probes,
            "firedrill:scenario/host@0.1.0": super::firedrill::scenario::host,
        },
    });

    impl From<Metadata> for super::Metadata {
        fn from(m: Metadata) -> Self {
            super::Metadata {
                name: m.name,
                version: m.version,
                description: m.description,
                params: m
                    .params
                    .into_iter()
                    .map(|p| super::ParamSpec {
                        name: p.name,
                        ty: match p.ty {
                            ParamType::String => super::ParamType::String,
                            ParamType::Integer => super::ParamType::Integer,
                            ParamType::Float => super::ParamType::Float,
                            ParamType::Boolean => super::ParamType::Boolean,
                            ParamType::Duration => super::ParamType::Duration,
                        },
                        default: p.default,
                        doc: p.doc,
                        secret: false,
                    })
                    .collect(),
                needs: m
                    .needs
                    .into_iter()
                    .map(|n| super::Need {
                        kind: n.kind,
                        target: n.target,
                    })
                    .collect(),
            }
        }
    }
}
