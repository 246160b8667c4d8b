//! Packages: `key`, `trust`, `publish`, `search`, `install`, `packages`,
//! `verify`, `yank` (the library is `firedrill-packages`).

use super::{Exit, Failure, usage};
use firedrill_packages::{
    Catalog, Index, IndexEntry, Installed, KeyPair, PackageError, PackageId, PackageMeta,
    PackageReq, Registry, Store, Synced, Trust, check_label, digest, registry::MAX_COMPONENT_BYTES,
};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

fn refused(e: PackageError) -> Failure {
    usage(e)
}

/// `--registry`: a directory, or the data dir's own registry.
#[derive(Debug, clap::Args)]
pub(crate) struct RegistryArg {
    /// A directory, or an OCI registry `oci://HOST[:PORT]/PREFIX/` (default:
    /// the one `<data-dir>/config.toml` names for the namespace, else the
    /// data dir's own directory registry)
    #[arg(long, value_name = "DIR|oci://HOST/PREFIX/")]
    registry: Option<String>,
}

impl RegistryArg {
    /// `--registry`, else the one `<data-dir>/config.toml` names for
    /// `namespace` (or its default), else the data dir's own.
    fn open(&self, data_dir: &Path, namespace: Option<&str>) -> Result<Registry, Failure> {
        let config = firedrill_packages::RegistryConfig::load(data_dir).map_err(refused)?;
        let spec = match &self.registry {
            Some(r) => r.clone(),
            None => config.registry_for(namespace),
        };
        Registry::open(&spec, &config).map_err(refused)
    }

    /// Whether this is the data dir's own registry, where the bundled
    /// scenarios are listed too.
    fn is_embedded(&self, data_dir: &Path) -> Result<bool, Failure> {
        let spec = match &self.registry {
            Some(r) => r.clone(),
            None => firedrill_packages::RegistryConfig::load(data_dir)
                .map_err(refused)?
                .registry_for(None),
        };
        Ok(Path::new(&spec) == data_dir.join("registry"))
    }
}

use firedrill_packages::bundled::{NAMESPACE as BUNDLED_NS, REGISTRY as BUNDLED_REGISTRY};

fn refuse_reserved(namespace: &str) -> Result<(), Failure> {
    if namespace == BUNDLED_NS {
        return Err(usage(format!(
            "the `{BUNDLED_NS}` namespace holds the scenarios that ship inside firedrill; publish and trust under your own namespace"
        )));
    }
    Ok(())
}

async fn sync_bundled(engine: &firedrill::Engine, catalog: &Catalog) -> Result<(), Failure> {
    firedrill_packages::bundled::sync(engine, catalog)
        .await
        .map_err(refused)
}

/// On `run --update`: say so when the namespace's registry has a version
/// `req` matches that is newer than `installed`. It is not installed here:
/// an install shows its capability review and asks first.
async fn newer_in_registry(data_dir: &Path, req: &PackageReq, installed: Option<&PackageId>) {
    let registry = match firedrill_packages::RegistryConfig::load(data_dir)
        .and_then(|c| Registry::open(&c.registry_for(Some(&req.namespace)), &c))
    {
        Ok(r) => r,
        Err(e) => return eprintln!("note: could not look for newer versions of {req}: {e}"),
    };
    match registry.resolve(req).await {
        Ok(m) => match m.id() {
            Ok(id) if installed.is_none_or(|i| id.version > i.version) => eprintln!(
                "note: {} has {id}, newer than what is installed{}: review and install it with `firedrill install {}:{}@={}`, then run with --update again",
                registry.name(),
                installed.map_or(String::new(), |i| format!(" ({})", i.version)),
                id.namespace,
                id.name,
                id.version
            ),
            _ => {}
        },
        Err(e) => eprintln!(
            "note: could not look for newer versions of {req} in {}: {e}",
            registry.name()
        ),
    }
}

/// The bundled scenario `req` names: its entry and bytes.
async fn bundled(
    engine: &firedrill::Engine,
    data_dir: &Path,
    req: &PackageReq,
) -> Result<(IndexEntry, &'static [u8]), String> {
    let catalog = Catalog::open(data_dir).map_err(|e| e.to_string())?;
    firedrill_packages::bundled::resolve(engine, &catalog, req)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a minisign key pair (firedrill.pub, firedrill.key); encrypted
    /// with the password in FIREDRILL_KEY_PASSWORD if it is set
    Generate {
        /// The directory to write it into
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TrustCommand {
    /// Trust a public key (a minisign .pub file or its base64 line) to sign a namespace
    Add {
        /// The key
        key: String,
        /// The namespace it may sign
        #[arg(long)]
        namespace: String,
    },
    /// List trusted keys
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a key
    Remove {
        /// Its id (as `trust list` shows it)
        key_id: String,
        /// Only for this namespace
        #[arg(long)]
        namespace: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// The scenario component (.wasm)
    scenario: PathBuf,
    /// The publisher's namespace
    #[arg(long)]
    namespace: String,
    /// The secret key to sign with (`firedrill key generate`, or minisign's)
    #[arg(long)]
    key: PathBuf,
    /// A README to publish with it
    #[arg(long)]
    readme: Option<PathBuf>,
    /// A search keyword (repeat for more)
    #[arg(long = "keyword")]
    keywords: Vec<String>,
    /// Where its source is (a URL), shown in the catalog
    #[arg(long)]
    source: Option<String>,
    /// Its licence, an SPDX expression (e.g. `Apache-2.0`)
    #[arg(long)]
    license: Option<String>,
    #[command(flatten)]
    registry: RegistryArg,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SearchArgs {
    /// Words in the name, description or keywords
    #[arg(default_value = "")]
    query: String,
    /// Only packages needing this fault kind (e.g. `delay`)
    #[arg(long)]
    needs: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArg,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// NAMESPACE:NAME[@REQ], e.g. `acme:checkout-latency@^1.2`
    package: String,
    /// Install without asking (after the review is printed)
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    registry: RegistryArg,
}

pub(crate) fn key(cmd: KeyCommand) -> Result<Exit, Failure> {
    match cmd {
        KeyCommand::Generate { out } => {
            let pair = KeyPair::generate(&out).map_err(refused)?;
            println!("key {} written:", pair.key_id);
            println!(
                "  public: {} (give it to those who install your packages)",
                pair.public.display()
            );
            println!(
                "  secret: {} (readable by you only; keep it out of version control)",
                pair.secret.display()
            );
            Ok(Exit::Pass)
        }
    }
}

pub(crate) fn trust(cmd: TrustCommand, data_dir: &Path) -> Result<Exit, Failure> {
    let mut trust = Trust::load(data_dir).map_err(refused)?;
    match cmd {
        TrustCommand::Add { key, namespace } => {
            refuse_reserved(&namespace)?;
            let id = trust.add(&key, &namespace).map_err(refused)?;
            println!("trusted key {id} to sign namespace `{namespace}`");
        }
        TrustCommand::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(trust.keys())?);
            } else if trust.keys().is_empty() {
                println!("no trusted keys: `firedrill trust add KEY.pub --namespace NS`");
            } else {
                for k in trust.keys() {
                    println!("{}  {}", k.key_id, k.namespace);
                }
            }
        }
        TrustCommand::Remove { key_id, namespace } => {
            match trust
                .remove(&key_id, namespace.as_deref())
                .map_err(refused)?
            {
                0 => {
                    return Err(usage(format!(
                        "key {key_id} is not trusted (`firedrill trust list`)"
                    )));
                }
                n => println!("removed {n} trust entr{}", if n == 1 { "y" } else { "ies" }),
            }
        }
    }
    Ok(Exit::Pass)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Load a component in the sandbox (its quickest code) and run its
/// `describe()`.
async fn describe(
    engine: &firedrill::Engine,
    bytes: &[u8],
    source: &str,
) -> Result<firedrill::Metadata, Failure> {
    let scenario = engine.load(bytes, source).map_err(usage)?;
    engine
        .inspect(&scenario, &Default::default())
        .await
        .map_err(usage)
}

pub(crate) async fn publish(args: PublishArgs, data_dir: &Path) -> Result<Exit, Failure> {
    check_label("namespace", &args.namespace).map_err(refused)?;
    refuse_reserved(&args.namespace)?;
    for (flag, value) in [("--source", &args.source), ("--license", &args.license)] {
        if value
            .as_deref()
            .is_some_and(|v| v.trim().is_empty() || v.len() > 512 || v.contains(['\n', '\0']))
        {
            return Err(usage(format!(
                "{flag} {value:?}: one line of at most 512 characters"
            )));
        }
    }
    let path = &args.scenario;
    let size = std::fs::metadata(path)
        .map_err(|e| usage(format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_COMPONENT_BYTES {
        return Err(refused(PackageError::TooLarge {
            what: path.display().to_string(),
            size,
            limit: MAX_COMPONENT_BYTES,
        }));
    }
    let bytes = std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let meta = describe(
        &super::scratch_engine(data_dir)?,
        &bytes,
        &path.display().to_string(),
    )
    .await?;
    check_label("the name its describe() returns:", &meta.name).map_err(refused)?;
    let id: PackageId = format!("{}:{}@{}", args.namespace, meta.name, meta.version)
        .parse()
        .map_err(|e| {
            usage(format!(
                "{}: its describe() says version {:?}: {e}",
                path.display(),
                meta.version
            ))
        })?;
    let readme = match &args.readme {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| usage(format!("--readme {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let signature = firedrill_packages::sign(&args.key, &id, &bytes).map_err(refused)?;
    let key_id = firedrill_packages::signed_by(&signature).unwrap_or_default();
    let registry = args.registry.open(data_dir, Some(&id.namespace))?;
    let package = PackageMeta {
        package: id.to_string(),
        digest: digest(&bytes),
        size,
        metadata: meta,
        keywords: args.keywords,
        readme,
        key_id: key_id.clone(),
        published_at: unix_ms(),
        yanked: false,
        source: args.source,
        license: args.license,
    };
    registry
        .publish(&package, &bytes, &signature)
        .await
        .map_err(refused)?;
    println!(
        "published {id} to {}\n  digest {}\n  signed by key {key_id}",
        registry.name(),
        package.digest
    );
    let index = registry
        .update_index(&args.key, unix_ms(), |index| {
            index.upsert(IndexEntry::of(&package));
            Ok(())
        })
        .await
        .map_err(|e| {
            usage(format!(
                "{id} is published, but its registry's index was not updated ({e}): search will not list it until `firedrill reindex --key KEY --registry {}`",
                registry.name()
            ))
        })?;
    println!(
        "  index of {} updated (stamp {}, {} versions)",
        registry.name(),
        index.stamp,
        index.packages.len()
    );
    Ok(Exit::Pass)
}

/// `firedrill reindex`: rebuild a registry's index from what it holds.
pub(crate) async fn reindex(
    key: &Path,
    registry: RegistryArg,
    data_dir: &Path,
) -> Result<Exit, Failure> {
    let registry = registry.open(data_dir, None)?;
    let all = registry.all().await.map_err(refused)?;
    let index = registry
        .update_index(key, unix_ms(), |index| {
            index.packages = all.iter().map(IndexEntry::of).collect();
            Ok(())
        })
        .await
        .map_err(refused)?;
    println!(
        "index of {} rebuilt: stamp {}, {} versions",
        registry.name(),
        index.stamp,
        index.packages.len()
    );
    Ok(Exit::Pass)
}

pub(crate) async fn search(args: SearchArgs, data_dir: &Path) -> Result<Exit, Failure> {
    let registry = args.registry.open(data_dir, None)?;
    let name = registry.name();
    let trust = Trust::load(data_dir).map_err(refused)?;
    let catalog = Catalog::open(data_dir).map_err(refused)?;
    // Whether the listing comes from an index signed by a trusted key: else
    // each entry's signer is only what the registry says (an install checks
    // the package's own signature either way).
    let mut verified = false;
    let mut found = match registry.sync(&catalog, &trust, unix_ms()).await {
        Ok(Synced::NoIndex) => {
            // Nothing indexed (published by an older firedrill, or by
            // hand): read every version, as the index would list them.
            let mut index = Index::default();
            for m in registry.all().await.map_err(refused)? {
                index.upsert(IndexEntry::of(&m));
            }
            index.search(&args.query, args.needs.as_deref())
        }
        Ok(Synced::Fresh(state) | Synced::Current(state)) => {
            verified = state.signer.trusted_for.is_some();
            if !verified {
                eprintln!(
                    "note: the index of {name} is signed by key {}, which you trust for no namespace, so it is unverified; installs verify each package against `firedrill trust list`",
                    state.signer.key_id
                );
            }
            catalog
                .search(&name, &args.query, args.needs.as_deref())
                .map_err(refused)?
        }
        Err(e) => match catalog.state(&name).map_err(refused)? {
            Some(state) => {
                eprintln!(
                    "warning: {e}\n  showing its index as synced {} ago (stamp {})",
                    humantime::format_duration(std::time::Duration::from_secs(
                        unix_ms().saturating_sub(state.synced_at) / 1000
                    )),
                    state.stamp
                );
                catalog
                    .search(&name, &args.query, args.needs.as_deref())
                    .map_err(refused)?
            }
            None => return Err(refused(e)),
        },
    };
    if args.registry.is_embedded(data_dir)? {
        // An engine only when this build's bundled scenarios are not
        // catalogued yet: making one is most of a search's time.
        if !firedrill_packages::bundled::current(&catalog).map_err(refused)? {
            sync_bundled(&super::scratch_engine(data_dir)?, &catalog).await?;
        }
        found.extend(
            catalog
                .search(BUNDLED_REGISTRY, &args.query, args.needs.as_deref())
                .map_err(refused)?,
        );
    }
    found.sort_by(|a, b| a.package.cmp(&b.package));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(Exit::Pass);
    }
    if found.is_empty() {
        println!("nothing found in {name}");
    }
    for e in &found {
        let trusted = match e.package.split_once(':') {
            Some((BUNDLED_NS, _)) => "bundled with firedrill".to_string(),
            Some((ns, _)) if trust.key(ns, &e.key_id).is_some() && verified => {
                format!("signed by {}, trusted", e.key_id)
            }
            Some((ns, _)) if trust.key(ns, &e.key_id).is_some() => format!(
                "the registry says signed by {}, a key trusted here; checked at install",
                e.key_id
            ),
            _ => format!("signed by {}, not trusted here", e.key_id),
        };
        println!("{}  {}", e.package, e.description);
        println!(
            "    needs: {}   ({trusted})",
            if e.needs.is_empty() {
                "nothing".into()
            } else {
                e.needs.join(", ")
            }
        );
    }
    Ok(Exit::Pass)
}

fn review(m: &PackageMeta, key_id: &str, meta: &firedrill::Metadata) {
    println!(
        "{}  (signed by key {key_id}, trusted for its namespace)",
        m.package
    );
    println!("  {}", meta.description);
    println!("  digest {}  ({} bytes)", m.digest, m.size);
    println!("it will be able to:");
    if meta.needs.is_empty() {
        println!("  apply no fault");
    }
    for n in &meta.needs {
        println!(
            "  {} on target \"{}\" (default parameters; a drill grants each)",
            n.kind, n.target
        );
    }
    super::inspect::print_params(&meta.params);
}

pub(crate) async fn install(args: InstallArgs, data_dir: &Path) -> Result<Exit, Failure> {
    let req: PackageReq = args.package.parse().map_err(refused)?;
    if req.namespace == BUNDLED_NS {
        let engine = super::scratch_engine(data_dir)?;
        let (entry, _) = bundled(&engine, data_dir, &req).await.map_err(usage)?;
        println!(
            "{}: bundled with firedrill (digest {}): drills name it as `package = \"{}\"` with nothing to install",
            entry.package,
            entry.digest,
            entry.name()
        );
        return Ok(Exit::Pass);
    }
    let registry = args.registry.open(data_dir, Some(&req.namespace))?;
    let where_ = registry.name();
    let in_registry = |e: PackageError| match e.to_string() {
        m if m.contains(&where_) => usage(m),
        m => usage(format!("{m} (registry {where_})")),
    };
    let m = registry.resolve(&req).await.map_err(in_registry)?;
    let id = m.id().map_err(in_registry)?;
    let (bytes, signature) = registry.fetch(&id).await.map_err(in_registry)?;
    let actual = digest(&bytes);
    if actual != m.digest {
        return Err(refused(PackageError::DigestMismatch {
            package: id.to_string(),
            registry: where_,
            expected: m.digest,
            actual,
        }));
    }
    let trust = Trust::load(data_dir).map_err(refused)?;
    let signer =
        firedrill_packages::verify(&trust, &id, &bytes, &signature).map_err(in_registry)?;
    // Quick (baseline) code for the review; optimized code once agreed.
    // One engine for the review and, once agreed, the compile.
    let engine = super::scratch_engine(data_dir)?;
    let meta = describe(&engine, &bytes, &id.to_string()).await?;
    if meta.name != id.name || meta.version != id.version.to_string() {
        return Err(usage(format!(
            "{id}: its describe() says {} {}, not {} {}: the registry's metadata does not match the component; do not install it",
            meta.name, meta.version, id.name, id.version
        )));
    }
    review(&m, &signer.key_id, &meta);
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(usage(
                "no terminal to ask for the review: read it above and pass --yes to install",
            ));
        }
        print!("install {id}? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not installed");
            return Ok(Exit::Usage);
        }
    }
    engine.precompile(&bytes, &id.to_string()).map_err(usage)?;
    let installed = Installed {
        meta: PackageMeta {
            metadata: meta,
            ..m
        },
        signer,
        registry: registry.name(),
        installed_at: unix_ms(),
    };
    let dir = Store::new(data_dir)
        .install(&installed, &bytes, &signature)
        .map_err(refused)?;
    println!("installed {id} in {} (compiled)", dir.display());
    Ok(Exit::Pass)
}

pub(crate) fn packages(json: bool, data_dir: &Path) -> Result<Exit, Failure> {
    let list = Store::new(data_dir).list().map_err(refused)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no packages installed: `firedrill search`, then `firedrill install NS:NAME`");
    }
    if !json {
        for i in &list {
            println!(
                "{}  signed by {}  {}",
                i.meta.package, i.signer.key_id, i.meta.digest
            );
        }
    }
    Ok(Exit::Pass)
}

pub(crate) async fn verify(package: &str, data_dir: &Path) -> Result<Exit, Failure> {
    let id: PackageId = package.parse().map_err(refused)?;
    if id.namespace == BUNDLED_NS {
        let engine = super::scratch_engine(data_dir)?;
        let req: PackageReq = format!("{BUNDLED_NS}:{}@={}", id.name, id.version)
            .parse()
            .map_err(refused)?;
        let (entry, _) = bundled(&engine, data_dir, &req).await.map_err(usage)?;
        println!(
            "{id}: ok, digest {} (bundled with firedrill {})",
            entry.digest,
            env!("CARGO_PKG_VERSION")
        );
        return Ok(Exit::Pass);
    }
    let trust = Trust::load(data_dir).map_err(refused)?;
    let (installed, _) = Store::new(data_dir)
        .component(&id, &trust)
        .map_err(refused)?;
    println!(
        "{id}: ok, digest {} signed by key {} (trusted for `{}`)",
        installed.meta.digest, installed.signer.key_id, id.namespace
    );
    Ok(Exit::Pass)
}

pub(crate) async fn yank(
    package: &str,
    key: &Path,
    registry: RegistryArg,
    data_dir: &Path,
) -> Result<Exit, Failure> {
    let id: PackageId = package.parse().map_err(refused)?;
    refuse_reserved(&id.namespace)?;
    let registry = registry.open(data_dir, Some(&id.namespace))?;
    registry.yank(&id, key, unix_ms()).await.map_err(refused)?;
    println!(
        "yanked {id} in {}: no new installs; drills pinned to it keep working",
        registry.name()
    );
    Ok(Exit::Pass)
}

/// `firedrill.lock`, beside a drill: the exact version and digest each
/// package of its drills resolved to on the first run.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Lock {
    #[serde(default, rename = "package")]
    packages: Vec<Locked>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Locked {
    /// `namespace:name`.
    name: String,
    version: String,
    digest: String,
}

/// A drill's scenario: its bytes, where it came from, and the package it
/// was installed as.
pub(crate) type DrillScenario = (Vec<u8>, String, Option<firedrill::history::PackageRef>);

/// The scenario of a drill: its package's installed component (resolved
/// through `firedrill.lock` beside the drill, which the first run writes
/// and `update` rewrites), else what the drill names directly.
pub(crate) async fn drill_scenario(
    engine: &firedrill::Engine,
    drill: &firedrill::Drill,
    data_dir: &Path,
    write_lock: bool,
    update: bool,
) -> Result<DrillScenario, firedrill::drill::DrillError> {
    let Some(package) = &drill.scenario.package else {
        return drill.scenario_bytes().map(|(b, s)| (b, s, None));
    };
    let problem = |m: String| drill.problem("scenario", "scenario.package", m);
    let req: PackageReq = package
        .parse()
        .map_err(|e: PackageError| problem(e.to_string()))?;
    let key = format!("{}:{}", req.namespace, req.name);
    let lock_path = drill
        .file
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("firedrill.lock");
    let mut lock: Lock = match std::fs::read_to_string(&lock_path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            problem(format!(
                "{}: {e}; it is written by firedrill: remove it, or run with --update",
                lock_path.display()
            ))
        })?,
        Err(_) => Lock::default(),
    };
    let pinned = lock.packages.iter().find(|l| l.name == key).cloned();
    if req.namespace == BUNDLED_NS {
        let (entry, bytes) = bundled(engine, data_dir, &req).await.map_err(problem)?;
        if let Some(l) = pinned.as_ref().filter(|_| !update)
            && (l.digest != entry.digest || !entry.package.ends_with(&format!("@{}", l.version)))
        {
            return Err(problem(format!(
                "{} pins {key}@{} with digest {}, but this firedrill bundles {} with digest {}: firedrill was upgraded or the lock file edited; check, then run with --update",
                lock_path.display(),
                l.version,
                l.digest,
                entry.package,
                entry.digest
            )));
        }
        if write_lock && (pinned.is_none() || update) {
            let version = entry.version().map(|v| v.to_string()).unwrap_or_default();
            write_lock_file(&lock_path, &mut lock, key, version, entry.digest.clone())
                .map_err(problem)?;
        }
        let package = firedrill::history::PackageRef {
            id: entry.package.clone(),
            digest: entry.digest.clone(),
            signer: firedrill_packages::bundled::SIGNER.into(),
            registry: BUNDLED_REGISTRY.into(),
        };
        return Ok((
            bytes.to_vec(),
            format!("package {} {} (bundled)", entry.package, entry.digest),
            Some(package),
        ));
    }
    let store = Store::new(data_dir);
    let trust = Trust::load(data_dir).map_err(|e| problem(e.to_string()))?;
    let id: PackageId = match (&pinned, update) {
        (Some(l), false) => {
            let id: PackageId = format!("{key}@{}", l.version)
                .parse()
                .map_err(|e: PackageError| problem(format!("{}: {e}", lock_path.display())))?;
            if !req.matches(&id.version) {
                return Err(problem(format!(
                    "{} pins {id}, which `{package}` does not match: run with --update to resolve it again",
                    lock_path.display()
                )));
            }
            id
        }
        _ => {
            let newest = store
                .versions(&req.namespace, &req.name)
                .map_err(|e| problem(e.to_string()))?
                .into_iter()
                .filter_map(|i| i.meta.id().ok())
                .filter(|id| req.matches(&id.version))
                .max_by(|a, b| a.version.cmp(&b.version));
            if update {
                newer_in_registry(data_dir, &req, newest.as_ref()).await;
            }
            newest.ok_or_else(|| {
                problem(format!(
                    "no installed version of {key} matches `{package}`: `firedrill install {package}`"
                ))
            })?
        }
    };
    let (installed, bytes) = store
        .component(&id, &trust)
        .map_err(|e| problem(e.to_string()))?;
    if let Some(l) = pinned.as_ref().filter(|_| !update)
        && l.digest != installed.meta.digest
    {
        return Err(problem(format!(
            "{} pins {id} with digest {}, but the installed one is {}: the lock file was edited or the package changed; check, then run with --update",
            lock_path.display(),
            l.digest,
            installed.meta.digest
        )));
    }
    if write_lock && (pinned.is_none() || update) {
        write_lock_file(
            &lock_path,
            &mut lock,
            key,
            id.version.to_string(),
            installed.meta.digest.clone(),
        )
        .map_err(problem)?;
    }
    let package = firedrill::history::PackageRef {
        id: id.to_string(),
        digest: installed.meta.digest.clone(),
        signer: installed.signer.key_id.clone(),
        registry: installed.registry.clone(),
    };
    Ok((
        bytes,
        format!(
            "package {id} {} (signed by {})",
            installed.meta.digest, installed.signer.key_id
        ),
        Some(package),
    ))
}

fn write_lock_file(
    path: &Path,
    lock: &mut Lock,
    name: String,
    version: String,
    digest: String,
) -> Result<(), String> {
    lock.packages.retain(|l| l.name != name);
    lock.packages.push(Locked {
        name,
        version,
        digest,
    });
    lock.packages.sort_by(|a, b| a.name.cmp(&b.name));
    let text = format!(
        "# Written by firedrill: the exact package each drill here runs.\n# `firedrill run --update` resolves again.\n{}",
        toml::to_string(&*lock).unwrap_or_default()
    );
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
