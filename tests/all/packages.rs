//! Signed packages: keys, trust, publish, search, review, install, verify,
//! yank, with Debian's `minisign` CLI checking our signatures and making
//! ones we accept; each attack refused with the package named and nothing
//! half-installed.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    text(&o)
}

fn refused(o: Output) -> String {
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    text(&o)
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    registry: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        World {
            data: root.join("data"),
            registry: root.join("registry"),
            root,
            _dir: dir,
        }
    }

    fn fd(&self, args: &[&str]) -> Output {
        firedrill(&self.data).args(args).output().unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn publish(&self, wasm: &Path, namespace: &str, key: &Path) -> Output {
        firedrill(&self.data)
            .arg("publish")
            .arg(wasm)
            .args(["--namespace", namespace, "--key"])
            .arg(key)
            .arg("--registry")
            .arg(&self.registry)
            .args(["--keyword", "latency"])
            .output()
            .unwrap()
    }

    fn install(&self, package: &str) -> Output {
        firedrill(&self.data)
            .args(["install", package, "--yes", "--registry"])
            .arg(&self.registry)
            .output()
            .unwrap()
    }

    fn in_registry(&self, id: &str, ext: &str) -> PathBuf {
        // `ns:name@version` → registry/ns/name/version<ext>
        let (ns, rest) = id.split_once(':').unwrap();
        let (name, version) = rest.split_once('@').unwrap();
        self.registry
            .join(ns)
            .join(name)
            .join(format!("{version}{ext}"))
    }

    fn installed(&self) -> String {
        ok(self.fd(&["packages"]))
    }
}

/// A user generates a key, trusts it, publishes, searches, reviews and
/// installs; `minisign -V` verifies the published signature and shows its
/// trusted comment binding the package, version and digest.
#[test]
fn publish_search_review_install_and_minisign_agrees() {
    let w = World::new();
    let out = ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    let key_id = out.split_whitespace().nth(1).unwrap().to_string();
    let pubkey = w.root.join("keys/firedrill.pub");
    let seckey = w.root.join("keys/firedrill.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&seckey).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A key is never overwritten.
    refused(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));

    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    let out = ok(w.publish(&wasm, "acme", &seckey));
    assert!(out.contains("published acme:slow-link@0.1.0"), "{out}");
    assert!(out.contains(&key_id), "{out}");
    // Versions are immutable.
    let out = refused(w.publish(&wasm, "acme", &seckey));
    assert!(
        out.contains("already published") && out.contains("acme:slow-link@0.1.0"),
        "{out}"
    );

    // Search by words and by the fault kind it needs.
    let reg = w.registry.to_str().unwrap();
    let o = w.fd(&["search", "latency", "--registry", reg]);
    let out = ok(o);
    assert!(
        out.contains("acme:slow-link@0.1.0")
            && out.contains("needs: delay")
            && out.contains(&format!("signed by {key_id}, not trusted here")),
        "{out}"
    );
    let out = ok(w.fd(&["search", "--needs", "kill", "--registry", reg]));
    assert!(!out.contains("acme:slow-link"), "{out}");
    // The registry's index is a signed document minisign verifies too.
    let o = std::process::Command::new(firedrill_tests::debian_program(
        "/usr/bin/minisign",
        &["minisign"],
    ))
    .arg("-V")
    .arg("-p")
    .arg(&pubkey)
    .arg("-m")
    .arg(w.registry.join("index.json"))
    .output()
    .unwrap();
    let out = ok(o);
    assert!(
        out.contains("firedrill-index stamp=1 digest=sha256:"),
        "{out}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.registry.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["packages"][0]["package"], "acme:slow-link@0.1.0");
    assert_eq!(index["packages"][0]["needs"][0], "delay");

    // Deny by default: nobody's key is trusted yet.
    let out = refused(w.install("acme:slow-link"));
    assert!(
        out.contains("not trusted for namespace `acme`") && out.contains("firedrill trust add"),
        "{out}"
    );
    assert!(w.installed().contains("no packages installed"));

    ok(w.fd(&[
        "trust",
        "add",
        pubkey.to_str().unwrap(),
        "--namespace",
        "acme",
    ]));
    assert!(ok(w.fd(&["trust", "list"])).contains(&format!("{key_id}  acme")));
    // Without a terminal and without --yes, the review is shown and nothing installed.
    let o = firedrill(&w.data)
        .args(["install", "acme:slow-link@^0.1", "--registry", reg])
        .output()
        .unwrap();
    let out = refused(o);
    assert!(
        out.contains("delay on target \"api-link\"") && out.contains("pass --yes"),
        "{out}"
    );
    assert!(w.installed().contains("no packages installed"));
    let out = ok(w.install("acme:slow-link@^0.1"));
    assert!(out.contains(&format!("signed by key {key_id}")), "{out}");
    assert!(
        out.contains("it will be able to:") && out.contains("delay on target \"api-link\""),
        "{out}"
    );
    assert!(out.contains("installed acme:slow-link@0.1.0"), "{out}");
    assert!(w.installed().contains("acme:slow-link@0.1.0"));
    assert!(ok(w.fd(&["verify", "acme:slow-link@0.1.0"])).contains("ok"));

    // An independent verifier: Debian's minisign CLI.
    let minisign = firedrill_tests::debian_program("/usr/bin/minisign", &["minisign"]);
    let o = std::process::Command::new(&minisign)
        .arg("-V")
        .arg("-p")
        .arg(&pubkey)
        .arg("-m")
        .arg(w.in_registry("acme:slow-link@0.1.0", ".wasm"))
        .arg("-x")
        .arg(w.in_registry("acme:slow-link@0.1.0", ".wasm.minisig"))
        .output()
        .unwrap();
    let out = ok(o);
    let digest = firedrill_packages::digest(firedrill_tests::SLOW_LINK);
    assert!(
        out.contains(&format!(
            "firedrill-package pkg=acme:slow-link version=0.1.0 digest={digest}"
        )),
        "{out}"
    );
}

/// With no registry named anywhere, publish, search and install use the
/// registry embedded in the data dir: nothing to set up. Trust taken back
/// is trust gone: the installed copy no longer verifies, and a copy
/// changed on disk is refused before it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_registry_needs_no_setup_and_trust_can_be_taken_back() {
    let w = World::new();
    let upstream = firedrill_tests::Upstream::start("t").await;
    let out = ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    let key_id = out.split_whitespace().nth(1).unwrap().to_string();
    let pubkey = w.root.join("keys/firedrill.pub");
    ok(w.fd(&[
        "trust",
        "add",
        pubkey.to_str().unwrap(),
        "--namespace",
        "acme",
    ]));
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    let out = ok(firedrill(&w.data)
        .arg("publish")
        .arg(&wasm)
        .args(["--namespace", "acme", "--key"])
        .arg(w.root.join("keys/firedrill.key"))
        .output()
        .unwrap());
    assert!(out.contains("published acme:slow-link@0.1.0"), "{out}");
    assert!(w.data.join("registry/acme/slow-link/0.1.0.wasm").is_file());
    let out = ok(w.fd(&["search", "slow"]));
    assert!(
        out.contains("acme:slow-link@0.1.0")
            && out.contains(&format!("signed by {key_id}, trusted")),
        "{out}"
    );
    let out = ok(w.fd(&["install", "acme:slow-link", "--yes"]));
    assert!(out.contains("installed acme:slow-link@0.1.0"), "{out}");
    let drill = w.write(
        "drill.toml",
        format!(
            "[scenario]\npackage = \"acme:slow-link@^0.1\"\nparams = {{ latency = \"0ms\" }}\n\n\
             [targets.api-link]\nkind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"{}\"\ngrants = [\"delay\"]\n",
            upstream.addr
        )
        .as_bytes(),
    );
    let drill = drill.to_str().unwrap().to_string();
    assert!(ok(w.fd(&["run", &drill])).contains("PASSED"));

    // The installed component changed on disk: refused before it runs.
    let installed: Vec<PathBuf> = walk(&w.data.join("packages"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    assert_eq!(installed.len(), 1, "{installed:?}");
    let mut changed = firedrill_tests::SLOW_LINK.to_vec();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(&installed[0], &changed).unwrap();
    let runs = || {
        let o = w.fd(&["history", "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
            .unwrap()
            .len()
    };
    let before = runs();
    let o = w.fd(&["run", &drill]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("acme:slow-link") && text(&o).contains("digest"),
        "{}",
        text(&o)
    );
    assert_eq!(runs(), before, "no run started: {}", text(&o));
    std::fs::write(&installed[0], firedrill_tests::SLOW_LINK).unwrap();
    assert!(ok(w.fd(&["run", &drill])).contains("PASSED"));

    // Trust taken back.
    let out = ok(w.fd(&["trust", "remove", &key_id]));
    assert!(out.contains("removed 1 trust entry"), "{out}");
    assert!(!ok(w.fd(&["trust", "list"])).contains(&key_id));
    let out = refused(w.fd(&["verify", "acme:slow-link@0.1.0"]));
    assert!(out.contains("not trusted for namespace `acme`"), "{out}");
    let out = refused(w.fd(&["trust", "remove", &key_id]));
    assert!(out.contains("is not trusted"), "{out}");
}

/// Keys and signatures made by Debian's minisign CLI: a key from
/// `minisign -G -W` signs a publish, and a signature from `minisign -S`
/// with the package's trusted comment is accepted at install.
#[test]
fn keys_and_signatures_from_the_minisign_cli_are_accepted() {
    let w = World::new();
    let minisign = firedrill_tests::debian_program("/usr/bin/minisign", &["minisign"]);
    let pubkey = w.root.join("mk.pub");
    let seckey = w.root.join("mk.key");
    let run = |args: &[&std::ffi::OsStr]| {
        let o = std::process::Command::new(&minisign)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "minisign {args:?}: {}", text(&o));
    };
    run(&[
        "-G".as_ref(),
        "-W".as_ref(),
        "-p".as_ref(),
        pubkey.as_os_str(),
        "-s".as_ref(),
        seckey.as_os_str(),
    ]);
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    ok(w.publish(&wasm, "acme", &seckey));
    ok(w.fd(&[
        "trust",
        "add",
        pubkey.to_str().unwrap(),
        "--namespace",
        "acme",
    ]));

    // Replace firedrill's signature with minisign's own, over the same
    // bytes with the trusted comment a package signature carries.
    let id = "acme:slow-link@0.1.0";
    let blob = w.in_registry(id, ".wasm");
    let sig = w.in_registry(id, ".wasm.minisig");
    std::fs::remove_file(&sig).unwrap();
    let comment = format!(
        "firedrill-package pkg=acme:slow-link version=0.1.0 digest={}",
        firedrill_packages::digest(firedrill_tests::SLOW_LINK)
    );
    run(&[
        "-S".as_ref(),
        "-s".as_ref(),
        seckey.as_os_str(),
        "-m".as_ref(),
        blob.as_os_str(),
        "-x".as_ref(),
        sig.as_os_str(),
        "-t".as_ref(),
        comment.as_ref(),
    ]);
    let out = ok(w.install(id));
    assert!(out.contains("installed acme:slow-link@0.1.0"), "{out}");
}

/// Each attack is refused, naming the package and what to do, and leaves
/// nothing installed.
#[test]
fn attacks_on_packages_are_refused_and_nothing_is_half_installed() {
    let w = World::new();
    ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("stranger").to_str().unwrap(),
    ]));
    let seckey = w.root.join("keys/firedrill.key");
    let pubkey = w.root.join("keys/firedrill.pub");
    for ns in ["acme", "other"] {
        ok(w.fd(&["trust", "add", pubkey.to_str().unwrap(), "--namespace", ns]));
    }
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    ok(w.publish(&wasm, "acme", &seckey));
    ok(w.publish(&wasm, "other", &seckey));
    let id = "acme:slow-link@0.1.0";

    // Names that try to leave the registry or the data dir.
    for bad in [
        "acme:../../etc@1.0.0",
        "../acme:slow-link",
        "acme:slow%2flink",
        "ACME:slow-link",
    ] {
        let out = refused(w.install(bad));
        assert!(
            out.contains("is not valid") || out.contains("is not a package"),
            "{bad}: {out}"
        );
    }
    // The `firedrill` namespace is the bundled scenarios'.
    let out = refused(
        firedrill(&w.data)
            .arg("publish")
            .arg(&wasm)
            .args(["--namespace", "firedrill", "--key"])
            .arg(&seckey)
            .arg("--registry")
            .arg(&w.registry)
            .output()
            .unwrap(),
    );
    assert!(out.contains("ship inside firedrill"), "{out}");
    let out = refused(w.fd(&[
        "trust",
        "add",
        pubkey.to_str().unwrap(),
        "--namespace",
        "firedrill",
    ]));
    assert!(out.contains("ship inside firedrill"), "{out}");
    let out = refused(
        firedrill(&w.data)
            .arg("publish")
            .arg(&wasm)
            .args(["--namespace", "../evil", "--key"])
            .arg(&seckey)
            .arg("--registry")
            .arg(&w.registry)
            .output()
            .unwrap(),
    );
    assert!(out.contains("namespace \"../evil\" is not valid"), "{out}");

    // A signature replayed from another package: valid, but made for
    // other:slow-link.
    let sig = w.in_registry(id, ".wasm.minisig");
    let original_sig = std::fs::read(&sig).unwrap();
    std::fs::copy(
        w.in_registry("other:slow-link@0.1.0", ".wasm.minisig"),
        &sig,
    )
    .unwrap();
    let out = refused(w.install(id));
    assert!(
        out.contains(id) && out.contains("was made for `firedrill-package pkg=other:slow-link"),
        "{out}"
    );
    std::fs::write(&sig, &original_sig).unwrap();

    // A signature replayed from another version of the same package: the
    // same blob offered as 0.2.0 with 0.1.0's valid signature.
    let replayed = "acme:slow-link@0.2.0";
    std::fs::copy(w.in_registry(id, ".wasm"), w.in_registry(replayed, ".wasm")).unwrap();
    std::fs::write(
        w.in_registry(replayed, ".json"),
        std::fs::read_to_string(w.in_registry(id, ".json"))
            .unwrap()
            .replace("\"0.1.0\"", "\"0.2.0\"")
            .replace("@0.1.0\"", "@0.2.0\""),
    )
    .unwrap();
    std::fs::copy(&sig, w.in_registry(replayed, ".wasm.minisig")).unwrap();
    let out = refused(w.install(replayed));
    assert!(
        out.contains(replayed)
            && out.contains("was made for `firedrill-package pkg=acme:slow-link version=0.1.0"),
        "{out}"
    );
    for ext in [".wasm", ".json", ".wasm.minisig"] {
        std::fs::remove_file(w.in_registry(replayed, ext)).unwrap();
    }

    // No signature at all.
    std::fs::remove_file(&sig).unwrap();
    let out = refused(w.install(id));
    assert!(
        out.contains("has no signature") && out.contains("cannot be installed unsigned"),
        "{out}"
    );
    std::fs::write(&sig, &original_sig).unwrap();

    // A signature by a key nobody trusts.
    let stranger_sig = firedrill_packages::sign(
        &w.root.join("stranger/firedrill.key"),
        &id.parse().unwrap(),
        firedrill_tests::SLOW_LINK,
    )
    .unwrap();
    std::fs::write(&sig, stranger_sig).unwrap();
    let out = refused(w.install(id));
    assert!(out.contains("not trusted for namespace `acme`"), "{out}");
    std::fs::write(&sig, &original_sig).unwrap();

    // A tampered blob: the registry's digest no longer matches...
    let blob = w.in_registry(id, ".wasm");
    let mut tampered = firedrill_tests::SLOW_LINK.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(&blob, &tampered).unwrap();
    let out = refused(w.install(id));
    assert!(
        out.contains("damaged or was changed") && out.contains(id),
        "{out}"
    );
    // ... and with the digest in the metadata changed too, the signature
    // does not verify.
    let meta_path = w.in_registry(id, ".json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    let good = firedrill_packages::digest(firedrill_tests::SLOW_LINK);
    std::fs::write(
        &meta_path,
        meta.replace(&good, &firedrill_packages::digest(&tampered)),
    )
    .unwrap();
    let out = refused(w.install(id));
    assert!(out.contains("does not verify") && out.contains(id), "{out}");
    std::fs::write(&meta_path, &meta).unwrap();
    std::fs::write(&blob, firedrill_tests::SLOW_LINK).unwrap();

    // A component whose describe() is another scenario, signed as this one.
    let seeded = firedrill_tests::SEEDED;
    std::fs::write(&blob, seeded).unwrap();
    std::fs::write(
        &meta_path,
        meta.replace(&good, &firedrill_packages::digest(seeded)),
    )
    .unwrap();
    std::fs::write(
        &sig,
        firedrill_packages::sign(&seckey, &id.parse().unwrap(), seeded).unwrap(),
    )
    .unwrap();
    let out = refused(w.install(id));
    assert!(
        out.contains("its describe() says seeded 0.1.0, not slow-link 0.1.0"),
        "{out}"
    );
    std::fs::write(&blob, firedrill_tests::SLOW_LINK).unwrap();
    std::fs::write(&meta_path, &meta).unwrap();
    std::fs::write(&sig, &original_sig).unwrap();

    // A blob far over the size cap is not read.
    let big = std::fs::File::create(&blob).unwrap();
    big.set_len(65 << 20).unwrap();
    let out = refused(w.install(id));
    assert!(out.contains("over the") && out.contains("cap"), "{out}");
    std::fs::write(&blob, firedrill_tests::SLOW_LINK).unwrap();

    // A yanked version takes no new installs.
    ok(w.fd(&[
        "yank",
        id,
        "--key",
        seckey.to_str().unwrap(),
        "--registry",
        w.registry.to_str().unwrap(),
    ]));
    let out = refused(w.install("acme:slow-link"));
    assert!(out.contains("yanked") && out.contains(id), "{out}");
    let out = ok(w.fd(&["search", "slow", "--registry", w.registry.to_str().unwrap()]));
    assert!(!out.contains(id), "a yanked version is not offered: {out}");

    // An index changed after it was signed: search says so and shows the
    // copy it last verified.
    let index = w.registry.join("index.json");
    let signed = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        signed.replace("\"yanked\":true", "\"yanked\":false"),
    )
    .unwrap();
    let o = w.fd(&["search", "slow", "--registry", w.registry.to_str().unwrap()]);
    let err = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("does not match its signature") && err.contains("as synced"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(id), "{err}");
    std::fs::write(&index, signed).unwrap();

    // An index re-signed by a stranger's key, its entries still naming the
    // trusted publisher: search says the index is unverified and does not
    // call its entries trusted (an install checks each package anyway).
    let reg = w.registry.to_str().unwrap();
    let stranger_key = w.root.join("stranger/firedrill.key");
    ok(w.fd(&[
        "reindex",
        "--key",
        stranger_key.to_str().unwrap(),
        "--registry",
        reg,
    ]));
    let out = ok(w.fd(&["search", "slow", "--registry", reg]));
    assert!(out.contains("unverified"), "{out}");
    assert!(
        out.contains("the registry says signed by") && !out.contains(", trusted)"),
        "{out}"
    );
    ok(w.fd(&[
        "reindex",
        "--key",
        seckey.to_str().unwrap(),
        "--registry",
        reg,
    ]));
    let out = ok(w.fd(&["search", "slow", "--registry", reg]));
    assert!(
        out.contains(", trusted)") && !out.contains("unverified"),
        "{out}"
    );

    assert!(w.installed().contains("no packages installed"));
    let leftovers: Vec<_> = walk(&w.data.join("packages"));
    assert!(
        leftovers.iter().all(|p| p.is_dir()),
        "nothing half-installed: {leftovers:?}"
    );

    // Garbage where the registry's metadata should be.
    std::fs::write(
        w.in_registry("other:slow-link@0.1.0", ".json"),
        b"\x00garbage",
    )
    .unwrap();
    let out = refused(w.install("other:slow-link"));
    assert!(
        out.contains("not package metadata") && out.contains("registry"),
        "{out}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// A drill names a package; its first run writes `firedrill.lock` with the
/// exact version and digest, history records the package and signer, a
/// hand-edited lock is refused, and `--update` resolves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_pins_its_package_in_a_lock_file() {
    let w = World::new();
    let upstream = firedrill_tests::Upstream::start("t").await;
    ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    let seckey = w.root.join("keys/firedrill.key");
    ok(w.fd(&[
        "trust",
        "add",
        w.root.join("keys/firedrill.pub").to_str().unwrap(),
        "--namespace",
        "acme",
    ]));
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    ok(w.publish(&wasm, "acme", &seckey));
    let drill = w.write(
        "drill.toml",
        format!(
            "[scenario]\npackage = \"acme:slow-link@^0.1\"\nparams = {{ latency = \"0ms\" }}\n\n\
             [targets.api-link]\nkind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"{}\"\ngrants = [\"delay\"]\n",
            upstream.addr
        )
        .as_bytes(),
    );
    let drill = drill.to_str().unwrap().to_string();
    // Not installed yet: the run says what to do.
    let out = refused(w.fd(&["run", &drill]));
    assert!(
        out.contains("drill.toml") && out.contains("firedrill install acme:slow-link@^0.1"),
        "{out}"
    );
    ok(w.install("acme:slow-link"));
    let out = ok(w.fd(&["check", &drill]));
    assert!(out.contains("ok: scenario slow-link 0.1.0"), "{out}");
    let out = ok(w.fd(&["run", &drill]));
    assert!(out.contains("PASSED"), "{out}");
    let lock_path = w.root.join("firedrill.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    let digest = firedrill_packages::digest(firedrill_tests::SLOW_LINK);
    assert!(
        lock.contains("name = \"acme:slow-link\"")
            && lock.contains("version = \"0.1.0\"")
            && lock.contains(&digest),
        "{lock}"
    );
    let shown = ok(w.fd(&["show"]));
    assert!(
        shown.contains("package acme:slow-link@0.1.0") && shown.contains("signed by"),
        "{shown}"
    );

    // A lock edited by hand no longer verifies.
    std::fs::write(
        &lock_path,
        lock.replace(&digest, &format!("sha256:{}", "0".repeat(64))),
    )
    .unwrap();
    let out = refused(w.fd(&["run", &drill]));
    assert!(
        out.contains("the lock file was edited") && out.contains("--update"),
        "{out}"
    );
    ok(w.fd(&["run", &drill, "--update"]));
    assert!(
        std::fs::read_to_string(&lock_path)
            .unwrap()
            .contains(&digest)
    );
    // `--update` says when the namespace's registry has a newer matching
    // version; it does not install it unreviewed.
    std::fs::write(
        w.data.join("config.toml"),
        format!(
            "[namespace_registries]\nacme = \"{}\"\n",
            w.registry.display()
        ),
    )
    .unwrap();
    let newer = "acme:slow-link@0.1.1";
    std::fs::write(
        w.in_registry(newer, ".json"),
        std::fs::read_to_string(w.in_registry("acme:slow-link@0.1.0", ".json"))
            .unwrap()
            .replace("@0.1.0\"", "@0.1.1\""),
    )
    .unwrap();
    let out = ok(w.fd(&["run", &drill, "--update"]));
    assert!(
        out.contains("has acme:slow-link@0.1.1, newer than what is installed (0.1.0)")
            && out.contains("firedrill install acme:slow-link@=0.1.1"),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(&lock_path)
            .unwrap()
            .contains("version = \"0.1.0\"")
    );
    std::fs::remove_file(w.in_registry(newer, ".json")).unwrap();
    // Runs record the package in history and reports.
    let report = w.root.join("report.json");
    ok(w.fd(&[
        "run",
        &drill,
        "--report",
        &format!("json={}", report.display()),
    ]));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let package = &json["run"]["scenario"]["package"];
    assert_eq!(package["id"], "acme:slow-link@0.1.0", "{json}");
    assert_eq!(package["digest"], digest.as_str());
    assert_eq!(package["registry"], w.registry.to_str().unwrap());
    assert!(package["signer"].as_str().unwrap().len() == 16, "{package}");

    // The bundled scenarios are packages `firedrill:NAME@VERSION`, listed
    // by the embedded registry and trusted because they ship inside
    // firedrill: nothing to install.
    let out = ok(w.fd(&["search", "--needs", "delay"]));
    assert!(
        out.contains("firedrill:latency-ramp@0.2.0") && out.contains("bundled with firedrill"),
        "{out}"
    );
    let out = ok(w.fd(&["install", "firedrill:latency-ramp@^0.2", "--yes"]));
    assert!(out.contains("nothing to install"), "{out}");
    let out = ok(w.fd(&["verify", "firedrill:latency-ramp@0.2.0"]));
    assert!(out.contains("ok") && out.contains("bundled"), "{out}");
    let out = refused(w.fd(&["install", "firedrill:no-such-thing", "--yes"]));
    assert!(out.contains("bundles no such scenario"), "{out}");
    std::fs::create_dir_all(w.root.join("bundled")).unwrap();
    let bundled = w.write(
        "bundled/drill.toml",
        format!(
            "[scenario]\npackage = \"firedrill:latency-ramp@^0.2\"\n\
             params = {{ steps = \"1ms\", samples = 1, slo = \"5s\", must-tolerate = \"0ms\", path = \"/\" }}\n\n\
             [targets.api-link]\nkind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"{}\"\ngrants = [\"delay\"]\n",
            upstream.addr
        )
        .as_bytes(),
    );
    let report = w.root.join("bundled/report.json");
    let out = ok(w.fd(&[
        "run",
        bundled.to_str().unwrap(),
        "--report",
        &format!("json={}", report.display()),
    ]));
    assert!(out.contains("PASSED"), "{out}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        json["run"]["scenario"]["package"]["id"], "firedrill:latency-ramp@0.2.0",
        "{json}"
    );
    assert_eq!(json["run"]["scenario"]["package"]["signer"], "bundled");
    let lock = std::fs::read_to_string(w.root.join("bundled/firedrill.lock")).unwrap();
    let bundled_digest =
        firedrill_packages::digest(firedrill::bundled::get("latency-ramp").unwrap());
    assert!(
        lock.contains("name = \"firedrill:latency-ramp\"") && lock.contains(&bundled_digest),
        "{lock}"
    );
}

/// Debian's docker-registry (CNCF Distribution 2.8) on loopback: a package
/// is published to it as a Wasm OCI artifact, found, reviewed, installed
/// and run from it; oras-py, an independent client, pulls the same
/// artifact and its layer's digest is the component's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_and_install_from_a_real_oci_registry_that_oras_reads() {
    let w = World::new();
    let upstream = firedrill_tests::Upstream::start("t").await;
    let registry = firedrill_tests::DockerRegistry::start(&w.root.join("oci"));
    let port = registry.port;
    let url = format!("oci://127.0.0.1:{port}/firedrill/");

    ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    ok(w.fd(&[
        "trust",
        "add",
        w.root.join("keys/firedrill.pub").to_str().unwrap(),
        "--namespace",
        "acme",
    ]));
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    let readme = w.write("README.md", b"# slow-link\n\nAdds latency to a link.\n");
    let publish = || {
        firedrill(&w.data)
            .arg("publish")
            .arg(&wasm)
            .args(["--namespace", "acme", "--key"])
            .arg(w.root.join("keys/firedrill.key"))
            .args(["--registry", &url])
            .arg("--readme")
            .arg(&readme)
            .args([
                "--keyword",
                "latency",
                "--source",
                "https://example.com/acme/slow-link",
            ])
            .args(["--license", "Apache-2.0"])
            .output()
            .unwrap()
    };
    let out = ok(publish());
    assert!(
        out.contains("published acme:slow-link@0.1.0 to oci://"),
        "{out}"
    );
    let out = refused(publish());
    assert!(out.contains("already published"), "{out}");

    let out = ok(w.fd(&["search", "slow", "--registry", &url]));
    assert!(
        out.contains("acme:slow-link@0.1.0") && out.contains("needs: delay"),
        "{out}"
    );
    // Which registry serves a namespace comes from the data dir's
    // config.toml, in wasm-pkg-tools' terms.
    std::fs::write(
        w.data.join("config.toml"),
        "[namespace_registries]\nacme = 7\n",
    )
    .unwrap();
    let out = refused(w.fd(&["install", "acme:slow-link@^0.1", "--yes"]));
    assert!(
        out.contains("config.toml") && out.contains("namespace_registries"),
        "{out}"
    );
    std::fs::write(
        w.data.join("config.toml"),
        format!("[namespace_registries]\nacme = \"{url}\"\n"),
    )
    .unwrap();
    let out = ok(w.fd(&["install", "acme:slow-link@^0.1", "--yes"]));
    assert!(
        out.contains("delay on target \"api-link\"")
            && out.contains("installed acme:slow-link@0.1.0"),
        "{out}"
    );
    ok(w.fd(&["verify", "acme:slow-link@0.1.0"]));
    // Search as JSON: what a script reads.
    let o = w.fd(&["search", "latency", "--json", "--registry", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(found[0]["package"], "acme:slow-link@0.1.0", "{found}");
    assert_eq!(found[0]["needs"][0], "delay", "{found}");

    // Pinned in a drill and run from what was installed from the registry.
    let drill = w.write(
        "drill.toml",
        format!(
            "[scenario]\npackage = \"acme:slow-link@^0.1\"\nparams = {{ latency = \"0ms\" }}\n\n\
             [targets.api-link]\nkind = \"proxy\"\nmode = \"http\"\nlisten = \"127.0.0.1:0\"\n\
             upstream = \"{}\"\ngrants = [\"delay\"]\n",
            upstream.addr
        )
        .as_bytes(),
    );
    let drill = drill.to_str().unwrap().to_string();
    let out = ok(w.fd(&["run", &drill]));
    assert!(out.contains("PASSED"), "{out}");
    let shown = ok(w.fd(&["show"]));
    assert!(
        shown.contains("package acme:slow-link@0.1.0") && shown.contains(&url),
        "{shown}"
    );

    // A registry whose blob no longer matches the manifest's layer digest
    // (changed in its storage): refused, nothing installed.
    let digest = firedrill_packages::digest(firedrill_tests::SLOW_LINK);
    let hex = digest.strip_prefix("sha256:").unwrap();
    let blob = w
        .root
        .join("oci/data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut tampered = firedrill_tests::SLOW_LINK.to_vec();
    tampered[100] ^= 1;
    std::fs::write(&blob, &tampered).unwrap();
    let fresh = w.root.join("fresh-data");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::copy(w.data.join("trust.toml"), fresh.join("trust.toml")).unwrap();
    let o = firedrill(&fresh)
        .args(["install", "acme:slow-link", "--yes", "--registry", &url])
        .output()
        .unwrap();
    let out = refused(o);
    assert!(
        out.contains(&url) && out.to_lowercase().contains("digest"),
        "{out}"
    );
    assert!(
        !fresh.join("packages/acme").exists(),
        "nothing half-installed"
    );
    std::fs::write(&blob, firedrill_tests::SLOW_LINK).unwrap();

    // OCI manifests are immutable: a yank goes into the registry's signed
    // index; installs then refuse the version, the installed pin stays.
    let key = w.root.join("keys/firedrill.key");
    ok(w.fd(&[
        "yank",
        "acme:slow-link@0.1.0",
        "--key",
        key.to_str().unwrap(),
        "--registry",
        &url,
    ]));
    let out = refused(w.fd(&["install", "acme:slow-link", "--yes", "--registry", &url]));
    assert!(out.contains("yanked"), "{out}");
    let out = ok(w.fd(&["search", "slow", "--registry", &url]));
    assert!(out.contains("nothing found"), "{out}");
    ok(w.fd(&["verify", "acme:slow-link@0.1.0"]));
    // The pinned drill keeps running the yanked version.
    let out = ok(w.fd(&["run", &drill]));
    assert!(out.contains("PASSED"), "{out}");

    // oras-py pulls the artifact; the file is the component.
    let oras = firedrill_tests::toolchains::oras();
    let pulled = w.root.join("pulled");
    let o = std::process::Command::new("python3")
        .env("PYTHONPATH", &oras)
        .arg("-c")
        .arg(format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='127.0.0.1:{port}', insecure=True)\n\
             print(c.pull(target='127.0.0.1:{port}/firedrill/acme/slow-link:0.1.0', outdir='{}'))\n\
             m = c.get_manifest('127.0.0.1:{port}/firedrill/acme/slow-link:0.1.0')\n\
             print(m['config']['mediaType'], [l['mediaType'] for l in m['layers']], [l['digest'] for l in m['layers']])\n\
             i = c.get_manifest('127.0.0.1:{port}/firedrill/firedrill-index:latest')\n\
             print('index', [l['mediaType'] for l in i['layers']])\n\
             import json\n\
             cfg = c.get_blob('127.0.0.1:{port}/firedrill/acme/slow-link:0.1.0', m['config']['digest']).json()\n\
             print('config', json.dumps(cfg, sort_keys=True))\n\
             print('annotations', json.dumps({{k: v for k, v in m['annotations'].items() if k.startswith('org.opencontainers')}}, sort_keys=True))\n",
            pulled.display()
        ))
        .output()
        .unwrap();
    let out = ok(o);
    let digest = firedrill_packages::digest(firedrill_tests::SLOW_LINK);
    assert!(
        out.contains("application/vnd.wasm.config.v0+json") && out.contains("['application/wasm']"),
        "{out}"
    );
    assert!(
        out.contains(&digest),
        "the layer's digest is the component's: {out}"
    );
    assert!(
        out.contains("index ['application/vnd.dev.firedrill.index.v1+json', 'application/vnd.dev.firedrill.minisign.signature']"),
        "{out}"
    );
    // The CNCF Wasm artifact's config (what wkg reads): wasip2, the layer,
    // and the component's own imports and exports, read from the binary.
    let config: serde_json::Value = serde_json::from_str(
        out.lines()
            .find_map(|l| l.strip_prefix("config "))
            .expect("the config was printed"),
    )
    .unwrap();
    assert_eq!(config["os"], "wasip2", "{config}");
    assert_eq!(config["architecture"], "wasm", "{config}");
    assert_eq!(config["layerDigests"][0], digest.as_str(), "{config}");
    assert!(
        config["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{config}"
    );
    let names = |key: &str| -> Vec<String> {
        config["component"][key]
            .as_array()
            .unwrap_or_else(|| panic!("component.{key}: {config}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("exports"), ["describe", "run"], "{config}");
    assert!(
        names("imports")
            .iter()
            .any(|i| i.starts_with("firedrill:scenario/")),
        "{config}"
    );
    let annotations: serde_json::Value = serde_json::from_str(
        out.lines()
            .find_map(|l| l.strip_prefix("annotations "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(annotations["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(
        annotations["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://example.com/acme/slow-link"
    );
    assert!(
        annotations["org.opencontainers.image.description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{annotations}"
    );
    let file = std::fs::read(pulled.join("slow-link.wasm")).unwrap();
    assert_eq!(firedrill_packages::digest(&file), digest);

    // Publishers at the same moment (an OCI registry has no lock): each
    // one's package lands in the registry's index.
    let teams = ["team-a", "team-b", "team-c", "team-d"];
    let publishers: Vec<_> = teams
        .iter()
        .map(|ns| {
            let data = w.root.join(format!("publisher-{ns}"));
            firedrill(&data)
                .arg("publish")
                .arg(&wasm)
                .args(["--namespace", ns, "--key"])
                .arg(&key)
                .args(["--registry", &url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in publishers {
        ok(p.wait_with_output().unwrap());
    }
    let out = ok(w.fd(&["search", "slow", "--registry", &url]));
    for ns in teams {
        assert!(
            out.contains(&format!("{ns}:slow-link@0.1.0")),
            "{ns}: {out}"
        );
    }

    // A registry that is down: named, with what to check.
    drop(registry);
    let out = refused(w.fd(&["install", "acme:slow-link", "--yes", "--registry", &url]));
    assert!(out.contains(&url) && out.contains("is it up"), "{out}");
}

/// A registry as teams run them: TLS with a private CA and HTTP Basic
/// auth (Debian's docker-registry with an htpasswd file). Credentials come
/// from the environment or from config.toml's wkg-style
/// `[registry."HOST".oci]` table, which must be private; they are never
/// printed; without them, or without the CA, the registry is refused with
/// what to do.
#[test]
fn a_registry_behind_tls_and_basic_auth() {
    let w = World::new();
    let password = "s3cret-registry-pass";
    let (registry, ca) =
        firedrill_tests::DockerRegistry::start_secured(&w.root.join("oci"), "ci", password);
    let host = format!("127.0.0.1:{}", registry.port);
    let url = format!("oci://{host}/team/");
    ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    ok(w.fd(&[
        "trust",
        "add",
        w.root.join("keys/firedrill.pub").to_str().unwrap(),
        "--namespace",
        "acme",
    ]));
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    let publish = |env: &[(&str, &str)]| {
        let mut c = firedrill(&w.data);
        c.arg("publish")
            .arg(&wasm)
            .args(["--namespace", "acme", "--key"])
            .arg(w.root.join("keys/firedrill.key"))
            .args(["--registry", &url]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let config = w.data.join("config.toml");
    let write_config = |auth: bool, ca_file: bool, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let mut text = format!("[registry.\"{host}\".oci]\nprotocol = \"https\"\n");
        if ca_file {
            text += &format!("ca_file = \"{}\"\n", ca.display());
        }
        if auth {
            text += &format!("auth = {{ username = \"ci\", password = \"{password}\" }}\n");
        }
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    // TLS with the private CA, no credentials: refused, naming the registry
    // and where credentials go.
    write_config(false, true, 0o600);
    let out = refused(publish(&[]));
    assert!(
        out.contains(&url)
            && out.contains("FIREDRILL_REGISTRY_USER")
            && out.contains("config.toml"),
        "{out}"
    );
    // Credentials from the environment.
    let o = publish(&[
        ("FIREDRILL_REGISTRY_USER", "ci"),
        ("FIREDRILL_REGISTRY_PASSWORD", password),
    ]);
    assert!(!text(&o).contains(password));
    let out = ok(o);
    assert!(out.contains("published acme:slow-link@0.1.0"), "{out}");

    // Credentials in config.toml: refused while others can read it.
    write_config(true, true, 0o644);
    let out = refused(w.fd(&["search", "--registry", &url]));
    assert!(
        out.contains("chmod 600") && !out.contains(password),
        "{out}"
    );
    write_config(true, true, 0o600);
    let out = ok(w.fd(&["search", "slow", "--registry", &url]));
    assert!(out.contains("acme:slow-link@0.1.0"), "{out}");
    let out = ok(w.fd(&["install", "acme:slow-link", "--yes", "--registry", &url]));
    assert!(out.contains("installed acme:slow-link@0.1.0"), "{out}");

    // A wrong password, and a certificate nobody vouches for: refused.
    let o = firedrill(&w.data)
        .args(["install", "acme:slow-link", "--yes", "--registry", &url])
        .env("FIREDRILL_REGISTRY_USER", "ci")
        .env("FIREDRILL_REGISTRY_PASSWORD", "wrong-pass")
        .output()
        .unwrap();
    let out = refused(o);
    assert!(out.contains(&url) && !out.contains("wrong-pass"), "{out}");
    write_config(true, false, 0o600);
    let out = refused(w.fd(&["install", "acme:slow-link", "--yes", "--registry", &url]));
    assert!(out.contains(&url) && !out.contains(password), "{out}");
    // Plain HTTP only on loopback.
    std::fs::write(
        &config,
        "[registry.\"registry.example.com\".oci]\nprotocol = \"http\"\n",
    )
    .unwrap();
    let out = refused(w.fd(&["search", "--registry", "oci://registry.example.com/chaos/"]));
    assert!(out.contains("loopback"), "{out}");
}

/// A registry behind a gateway that takes a bearer token (Debian's nginx
/// in front of docker-registry, refusing any request without
/// `Authorization: Bearer <token>`): the token from FIREDRILL_REGISTRY_TOKEN
/// or config.toml's `auth = { token = … }` publishes and installs; none, or
/// a wrong one, is refused naming the registry; the token is never printed.
#[test]
fn a_registry_behind_a_bearer_token() {
    let w = World::new();
    let registry = firedrill_tests::DockerRegistry::start(&w.root.join("oci"));
    let gateway = w.root.join("gateway");
    for d in ["logs", "tmp"] {
        std::fs::create_dir_all(gateway.join(d)).unwrap();
    }
    let port = free_port();
    const TOKEN: &str = "fdr-bearer-7c1e0a9d";
    let g = gateway.display();
    std::fs::write(
        gateway.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {g}/nginx.pid;\nerror_log stderr;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {g}/tmp; proxy_temp_path {g}/tmp; fastcgi_temp_path {g}/tmp; uwsgi_temp_path {g}/tmp; scgi_temp_path {g}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; client_max_body_size 0;\n\
             location / {{ if ($http_authorization != \"Bearer {TOKEN}\") {{ return 401; }}\n\
             proxy_set_header Host $http_host; proxy_pass http://127.0.0.1:{}; }} }} }}\n",
            registry.port
        ),
    )
    .unwrap();
    let nginx = std::process::Command::new(firedrill_tests::debian_program(
        "/usr/sbin/nginx",
        &["nginx"],
    ))
    .args([
        "-p",
        &g.to_string(),
        "-c",
        &format!("{g}/nginx.conf"),
        "-e",
        "stderr",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Killed when the test ends, pass or fail.
    let _nginx = KillOnDrop(nginx);
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 20, "nginx did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("oci://127.0.0.1:{port}/firedrill/");
    ok(w.fd(&[
        "key",
        "generate",
        "--out",
        w.root.join("keys").to_str().unwrap(),
    ]));
    ok(w.fd(&[
        "trust",
        "add",
        w.root.join("keys/firedrill.pub").to_str().unwrap(),
        "--namespace",
        "acme",
    ]));
    let wasm = w.write("slow-link.wasm", firedrill_tests::SLOW_LINK);
    let publish = |token: Option<&str>| {
        let mut c = firedrill(&w.data);
        c.arg("publish")
            .arg(&wasm)
            .args(["--namespace", "acme", "--key"])
            .arg(w.root.join("keys/firedrill.key"))
            .args(["--registry", &url]);
        if let Some(t) = token {
            c.env("FIREDRILL_REGISTRY_TOKEN", t);
        }
        c.output().unwrap()
    };
    for token in [None, Some("a-wrong-token")] {
        let out = refused(publish(token));
        assert!(
            out.contains(&url) && out.contains("FIREDRILL_REGISTRY_TOKEN"),
            "{out}"
        );
        assert!(
            !out.contains("a-wrong-token"),
            "the token is never printed: {out}"
        );
    }
    let out = ok(publish(Some(TOKEN)));
    assert!(out.contains("published acme:slow-link@0.1.0"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
    // The token from config.toml, wkg's `[registry."HOST".oci]` table.
    let config = w.data.join("config.toml");
    std::fs::write(
        &config,
        format!("[registry.\"127.0.0.1:{port}\".oci]\nauth = {{ token = \"{TOKEN}\" }}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ok(w.fd(&["install", "acme:slow-link", "--yes", "--registry", &url]));
    assert!(out.contains("installed acme:slow-link@0.1.0"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A registry that answers garbage, and one that never answers: each
/// named, with what to check, within the time-out the user set.
#[test]
fn a_registry_that_answers_garbage_or_hangs_is_named() {
    let w = World::new();
    let garbage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_port = garbage.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in garbage.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nnot json!");
        }
    });
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hang.incoming().flatten() {
            held.push(s); // accepted, never answered
        }
    });
    for port in [garbage_port, hang_port] {
        let url = format!("oci://127.0.0.1:{port}/firedrill/");
        let started = std::time::Instant::now();
        let o = firedrill(&w.data)
            .env("FIREDRILL_REGISTRY_TIMEOUT", "1s")
            .args(["install", "acme:slow-link", "--yes", "--registry", &url])
            .output()
            .unwrap();
        let out = refused(o);
        assert!(
            out.contains(&url) && out.contains("acme:slow-link"),
            "{out}"
        );
        assert!(
            started.elapsed().as_secs() < 20,
            "bounded by the time-out: {out}"
        );
    }
    assert!(w.installed().contains("no packages installed"));
}
