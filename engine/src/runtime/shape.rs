//! What a component asks of the host, read from its bytes before anything
//! is compiled: the interfaces it imports and how many core instances it
//! creates. A component that would be refused at link time or by a limit is
//! refused here, in its own terms, without seconds of compilation and
//! megabytes of cache for nothing.

use wasmparser::{ComponentTypeRef, Instance, KnownCustom, Parser, Payload};

/// The toolchain a component was built with, from its `producers`
/// sections: load errors give advice in its terms.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// cargo and the firedrill SDK (or wit-bindgen).
    Rust,
    /// componentize-py.
    Python,
    /// ComponentizeJS (`componentize-js`, `jco componentize`).
    JavaScript,
    /// Something else.
    #[default]
    Other,
}

impl Toolchain {
    /// How to build a scenario with this toolchain.
    pub fn build_hint(self) -> &'static str {
        match self {
            Toolchain::Rust => {
                "build it with the firedrill SDK: `cargo build --release --target wasm32-wasip2`"
            }
            Toolchain::Python => {
                "build it against firedrill's WIT: `componentize-py -d wit -w scenario componentize app -o scenario.wasm`"
            }
            Toolchain::JavaScript => {
                "build it against firedrill's WIT: `componentize-js scenario.js --wit wit -n scenario -o scenario.wasm`"
            }
            Toolchain::Other => {
                "build it against firedrill's WIT (`wit/`, world `scenario`) for wasm32-wasip2: with the Rust SDK, componentize-py or componentize-js"
            }
        }
    }
}

/// What a component's top level imports, and its core instances.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    /// Import names, e.g. `wasi:http/types@0.2.10`.
    pub(crate) imports: Vec<String>,
    /// Export names, e.g. `describe`.
    pub(crate) exports: Vec<String>,
    /// Core module instantiations in the component and the components it
    /// nests: what the pooling allocator and `[limits] instances` count.
    pub(crate) core_instances: u32,
    /// What built it.
    pub(crate) toolchain: Toolchain,
}

/// A component's top-level imports and exports (instances and functions,
/// not types), as an OCI artifact's config lists them.
pub fn interfaces(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    read(bytes).map(|s| (s.imports, s.exports))
}

/// Read `bytes`; `Err` carries the parser's message (the component is not
/// well formed, and compiling it would fail the same way).
pub(crate) fn read(bytes: &[u8]) -> Result<Shape, String> {
    let mut shape = Shape::default();
    let mut depth = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    // A world's own types are imported as types; only
                    // instances and functions are the host's to provide.
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        shape.imports.push(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    if !matches!(export.kind, wasmparser::ComponentExternalKind::Type) {
                        shape.exports.push(export.name.name.to_string());
                    }
                }
            }
            Payload::CustomSection(section) => {
                if let KnownCustom::Producers(reader) = section.as_known() {
                    for field in reader.into_iter().flatten() {
                        for value in field.values.into_iter().flatten() {
                            shape.toolchain = shape.toolchain.or(producer(field.name, value.name));
                        }
                    }
                }
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    if let Instance::Instantiate { .. } = instance.map_err(|e| e.to_string())? {
                        shape.core_instances += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// The toolchain a `producers` entry names: the component tools first
/// (a Python component also holds C and Rust code).
fn producer(field: &str, name: &str) -> Toolchain {
    let name = name.to_ascii_lowercase();
    match field {
        // componentize-py names no language; its snapshot step is
        // component-init-transform.
        "processed-by"
            if name.contains("componentize-py") || name.contains("component-init-transform") =>
        {
            Toolchain::Python
        }
        "processed-by" if name.contains("componentizejs") || name.contains("componentize-js") => {
            Toolchain::JavaScript
        }
        "processed-by" if name.contains("wit-bindgen-rust") => Toolchain::Rust,
        "language" if name == "python" => Toolchain::Python,
        "language" if name == "javascript" => Toolchain::JavaScript,
        "language" if name == "rust" => Toolchain::Rust,
        _ => Toolchain::Other,
    }
}

impl Toolchain {
    /// The more telling of two: a scripting language's runtime is built
    /// from Rust and C, so Python or JavaScript wins over Rust.
    fn or(self, other: Toolchain) -> Toolchain {
        let rank = |t: Toolchain| match t {
            Toolchain::Other => 0,
            Toolchain::Rust => 1,
            Toolchain::Python | Toolchain::JavaScript => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// The interfaces the engine links, by package and name. Versions match as
/// wasmtime's linker matches them (semver-compatible: any 0.2.x of WASI,
/// any 0.1.x of firedrill's WIT).
const LINKED: &[(&str, &str, &[&str])] = &[
    (
        "firedrill:scenario",
        "0.1",
        &["types", "faults", "probes", "host"],
    ),
    (
        "wasi:cli",
        "0.2",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:clocks", "0.2", &["monotonic-clock", "wall-clock"]),
    ("wasi:filesystem", "0.2", &["types", "preopens"]),
    ("wasi:io", "0.2", &["error", "poll", "streams"]),
    (
        "wasi:random",
        "0.2",
        &["random", "insecure", "insecure-seed"],
    ),
    (
        "wasi:sockets",
        "0.2",
        &[
            "network",
            "instance-network",
            "ip-name-lookup",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
        ],
    ),
    ("wasi:http", "0.2", &["types", "outgoing-handler"]),
];

/// Whether the engine links an import of this name.
pub(crate) fn is_linked(name: &str) -> bool {
    let Some((path, version)) = name.split_once('@') else {
        return false;
    };
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    LINKED.iter().any(|(p, major, interfaces)| {
        *p == package
            && interfaces.contains(&interface)
            && version
                .strip_prefix(major)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_names_match_as_the_linker_does() {
        assert!(is_linked("wasi:http/types@0.2.10"));
        assert!(is_linked("wasi:http/outgoing-handler@0.2.0"));
        assert!(is_linked("wasi:io/streams@0.2.12"));
        assert!(is_linked("firedrill:scenario/faults@0.1.0"));
        assert!(is_linked("firedrill:scenario/host@0.1.1"));
        assert!(!is_linked("firedrill:scenario/host@0.2.0"));
        assert!(!is_linked("wasi:http/types@0.3.0"));
        assert!(!is_linked("wasi:http/types@0.20.1"));
        assert!(!is_linked("wasi:keyvalue/store@0.2.0"));
        assert!(!is_linked("test:evil/backdoor"));
        assert!(!is_linked("wasi:cli/run@0.2.0"));
    }
}
