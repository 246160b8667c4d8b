//! `firedrill proxy serve`: a long-lived set of named TCP proxies with a
//! control API compatible with Toxiproxy 2.x, so existing clients and
//! Testcontainers setups work unchanged. The principal type is
//! [`Registry`]; [`api`] maps HTTP routes onto it.
//!
//! ```text
//!  Toxiproxy client ──HTTP──► api ──► Registry ──► Proxy (drivers::proxy)
//!                                        │            ▲
//!        toxic ⇄ Effect (firedrill::toxiproxy::toxic) └── scenario faults
//! ```
//!
//! A toxic is a [`ProxyFault`] with a name; faults made on the same proxies
//! by other means (a scenario, the library) are listed as toxics too, so
//! both paths see one set.
//!
//! **Dead-man's switch.** A client that must not leave toxics behind if it
//! dies (a firedrill engine driving a `toxiproxy` target) takes a lease with
//! `PUT /leases/{holder}` and names it in each toxic it adds. It renews the
//! lease while it lives; once a lease goes `ttl` without renewal,
//! [`Registry::expire`] removes every toxic made under it.

pub mod api;

use firedrill::drivers::proxy::{Direction, Proxy, ProxyConfig, ProxyFault, ProxyMode};
pub use firedrill::toxiproxy::ApiError;
use firedrill::toxiproxy::toxic;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The Toxiproxy version this API mirrors.
pub const TOXIPROXY_VERSION: &str = "2.12.0";

/// A proxy as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProxyView {
    /// Name.
    pub name: String,
    /// Listen address, resolved once bound.
    pub listen: String,
    /// Upstream `host:port`.
    pub upstream: String,
    /// Whether it listens.
    pub enabled: bool,
    /// Its toxics, upstream stream first.
    pub toxics: Vec<ToxicView>,
}

/// A toxic as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToxicView {
    /// Every attribute of its type.
    pub attributes: Value,
    /// Name, unique per proxy.
    pub name: String,
    /// Type, e.g. `latency`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` or `downstream`.
    pub stream: String,
    /// Share of connections it affects.
    pub toxicity: Value,
    /// The lease it was made under (a firedrill extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

/// A lease as `PUT /leases/{holder}` answers it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaseView {
    /// Who holds it.
    pub holder: String,
    /// Milliseconds without renewal before its toxics are removed.
    pub ttl: u64,
    /// Toxics made under it.
    pub toxics: usize,
}

/// The longest proxy, toxic or lease-holder name, in bytes. Names travel
/// in URL paths (`/proxies/{name}`), so a name too long for a request line
/// would make a proxy that can be created but never read or deleted.
pub const MAX_NAME: usize = 255;

/// Refuse an over-long `name` given in `field`.
fn check_name(field: &str, name: &str, suffix: &str) -> Result<(), ApiError> {
    if name.len() > MAX_NAME {
        return Err(ApiError::bad_request(format!(
            "{field}{suffix}: at most {MAX_NAME} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}

/// Refuse a toxicity that is not a share of connections.
fn check_toxicity(t: f64) -> Result<(), ApiError> {
    if !(0.0..=1.0).contains(&t) {
        return Err(ApiError::bad_request(format!(
            "toxicity: must be between 0 and 1 (the share of connections affected), got {t}"
        )));
    }
    Ok(())
}

/// Shortest and longest lease a client may take.
pub const LEASE_TTL: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);

/// A proxy definition, as `POST /proxies`, `/populate` and `--config` take
/// it. `null` fields count as absent; unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProxyInput {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Listen address; empty picks a port on every interface.
    #[serde(default)]
    pub listen: Option<String>,
    /// Upstream `host:port`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A toxic definition for `POST /proxies/{p}/toxics`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ToxicInput {
    /// Default `<type>_<stream>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Toxic type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Default `downstream`.
    #[serde(default)]
    pub stream: Option<String>,
    /// Default 1.
    #[serde(default)]
    pub toxicity: Option<f64>,
    /// Attributes of the type.
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
    /// A lease taken with `PUT /leases/{holder}`: the toxic goes when the
    /// lease expires (a firedrill extension).
    #[serde(default)]
    pub lease: Option<String>,
}

#[derive(Debug)]
struct Toxic {
    name: String,
    kind: String,
    stream: Direction,
    toxicity: f64,
    attributes: Map<String, Value>,
    lease: Option<String>,
    /// The fault on the running proxy, if the toxic does anything and the
    /// proxy is enabled.
    key: Option<u64>,
}

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    expires: Instant,
    /// Its toxics act on traffic but are left out of every listing and
    /// count (a game day's faults, hidden from responders).
    sealed: bool,
}

#[derive(Debug)]
struct Entry {
    listen: String,
    upstream: String,
    proxy: Option<Arc<Proxy>>,
    toxics: Vec<Toxic>,
}

/// The proxies of a `firedrill proxy serve`.
#[derive(Debug)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Entry>>,
    leases: std::sync::Mutex<BTreeMap<String, Lease>>,
    seed: u64,
    draws: AtomicU64,
}

fn stream_name(d: Direction) -> &'static str {
    if d == Direction::Upstream {
        "upstream"
    } else {
        "downstream"
    }
}

fn toxicity_json(t: f64) -> Value {
    if t.fract() == 0.0 && t.abs() < 1e15 {
        Value::from(t as i64)
    } else {
        Value::from(t)
    }
}

impl Registry {
    /// An empty registry; toxicity draws derive from `seed`.
    pub fn new(seed: u64) -> Registry {
        Registry {
            proxies: Mutex::default(),
            leases: std::sync::Mutex::default(),
            seed,
            draws: AtomicU64::new(0),
        }
    }

    fn next_seed(&self) -> u64 {
        self.seed
            .wrapping_add(self.draws.fetch_add(1, Ordering::Relaxed))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The holders of sealed leases.
    fn sealed(&self) -> BTreeSet<String> {
        self.leases
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.sealed)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Every proxy by name.
    pub async fn list(&self) -> BTreeMap<String, ProxyView> {
        let hidden = self.sealed();
        let proxies = self.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, e)| (name.clone(), view(name, e, &hidden)))
            .collect()
    }

    /// One proxy.
    pub async fn get(&self, name: &str) -> Result<ProxyView, ApiError> {
        let hidden = self.sealed();
        let proxies = self.proxies.lock().await;
        proxies
            .get(name)
            .map(|e| view(name, e, &hidden))
            .ok_or_else(ApiError::proxy_not_found)
    }

    /// `POST /proxies`.
    pub async fn create(&self, input: ProxyInput) -> Result<ProxyView, ApiError> {
        let (name, upstream) = required(&input, None)?;
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&name) {
            return Err(ApiError::new(409, "proxy already exists"));
        }
        let entry = self.entry(&name, &input, upstream).await?;
        let v = view(&name, &entry, &BTreeSet::new());
        proxies.insert(name, entry);
        Ok(v)
    }

    async fn entry(
        &self,
        name: &str,
        input: &ProxyInput,
        upstream: String,
    ) -> Result<Entry, ApiError> {
        let mut entry = Entry {
            listen: input.listen.clone().unwrap_or_default(),
            upstream,
            proxy: None,
            toxics: Vec::new(),
        };
        if input.enabled.unwrap_or(true) {
            self.start(name, &mut entry).await?;
        }
        Ok(entry)
    }

    /// Bind `entry`'s proxy and put its toxics on it.
    async fn start(&self, name: &str, entry: &mut Entry) -> Result<(), ApiError> {
        let addr = resolve_listen(&entry.listen).await?;
        let config = ProxyConfig {
            name: name.to_string(),
            listen: addr,
            upstream: entry.upstream.clone(),
            mode: ProxyMode::Tcp,
        };
        // A proxy just stopped frees its port a moment later.
        let mut tries = 0;
        let proxy = loop {
            match Proxy::start(config.clone()).await {
                Ok(p) => break p,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => {
                    return Err(ApiError::new(
                        500,
                        format!("listen tcp {}: {}", entry.listen, root_cause(&e)),
                    ));
                }
            }
        };
        entry.listen = proxy.local_addr().to_string();
        for t in &mut entry.toxics {
            t.key = self.add(&proxy, t);
        }
        entry.proxy = Some(proxy);
        Ok(())
    }

    fn add(&self, proxy: &Proxy, t: &Toxic) -> Option<u64> {
        let effect = toxic::effect(&t.kind, &t.attributes, t.stream)?;
        Some(proxy.add_fault(
            ProxyFault::new(effect, t.toxicity, None, self.next_seed()).named(t.name.clone()),
        ))
    }

    /// `POST /proxies/{name}`: change listen, upstream, enabled.
    pub async fn update(&self, name: &str, input: ProxyInput) -> Result<ProxyView, ApiError> {
        let hidden = self.sealed();
        let mut proxies = self.proxies.lock().await;
        let entry = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let listen = input.listen.clone().unwrap_or_else(|| entry.listen.clone());
        let upstream = input
            .upstream
            .clone()
            .unwrap_or_else(|| entry.upstream.clone());
        let enabled = input.enabled.unwrap_or(entry.proxy.is_some());
        if listen != entry.listen || upstream != entry.upstream {
            stop(entry).await;
            entry.listen = listen;
            entry.upstream = upstream;
        }
        if enabled && entry.proxy.is_none() {
            self.start(name, entry).await?;
        } else if !enabled {
            stop(entry).await;
        }
        Ok(view(name, entry, &hidden))
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut entry = proxies.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        stop(&mut entry).await;
        Ok(())
    }

    /// `POST /populate`: create or replace each; the ones applied, or the
    /// error with the ones applied before it.
    pub async fn populate(
        &self,
        inputs: Vec<ProxyInput>,
    ) -> Result<Vec<ProxyView>, (ApiError, Vec<ProxyView>)> {
        // Every definition is checked before any is applied.
        let checked = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| Ok((required(&input, Some(i + 1))?, input)))
            .collect::<Result<Vec<_>, ApiError>>()
            .map_err(|e| (e, Vec::new()))?;
        let hidden = self.sealed();
        let mut done = Vec::new();
        for ((name, upstream), input) in checked {
            let mut proxies = self.proxies.lock().await;
            if let Some(existing) = proxies.get(&name) {
                let same_listen = match (
                    input.listen.as_deref(),
                    existing.listen.parse::<SocketAddr>(),
                ) {
                    (Some(l), Ok(bound)) => resolve_listen(l).await.is_ok_and(|a| a == bound),
                    (l, _) => l.unwrap_or_default() == existing.listen,
                };
                if same_listen && existing.upstream == upstream {
                    done.push(view(&name, existing, &hidden));
                    continue;
                }
                let mut old = proxies.remove(&name).expect("present");
                stop(&mut old).await;
            }
            match self.entry(&name, &input, upstream).await {
                Ok(entry) => {
                    done.push(view(&name, &entry, &hidden));
                    proxies.insert(name, entry);
                }
                Err(e) => return Err((e, done)),
            }
        }
        Ok(done)
    }

    /// `POST /reset`: enable every proxy and remove every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for (name, entry) in proxies.iter_mut() {
            if entry.proxy.is_none() {
                self.start(name, entry).await?;
            }
            let proxy = entry.proxy.clone().expect("started");
            entry.toxics.clear();
            for f in proxy.faults().iter() {
                proxy.remove_fault(f.key);
            }
        }
        Ok(())
    }

    /// `GET /proxies/{name}/toxics`.
    pub async fn toxics(&self, name: &str) -> Result<Vec<ToxicView>, ApiError> {
        let hidden = self.sealed();
        let proxies = self.proxies.lock().await;
        let entry = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        Ok(toxic_views(entry, &hidden))
    }

    /// `GET /proxies/{name}/toxics/{toxic}`.
    pub async fn toxic(&self, name: &str, toxic: &str) -> Result<ToxicView, ApiError> {
        self.toxics(name)
            .await?
            .into_iter()
            .find(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)
    }

    /// `POST /proxies/{name}/toxics`.
    pub async fn add_toxic(&self, name: &str, input: ToxicInput) -> Result<ToxicView, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let stream_text = input.stream.clone().unwrap_or_else(|| "downstream".into());
        let stream = match stream_text.to_ascii_lowercase().as_str() {
            "upstream" => Direction::Upstream,
            "downstream" => Direction::Downstream,
            _ => {
                return Err(ApiError::bad_request(
                    "stream was invalid, can be either upstream or downstream",
                ));
            }
        };
        let kind = input.kind.clone().unwrap_or_default();
        let toxic_name = match input.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("{kind}_{stream_text}"),
        };
        if !toxic::known(&kind) {
            return Err(ApiError::bad_request("invalid toxic type"));
        }
        check_name("name", &toxic_name, "")?;
        let toxicity = input.toxicity.unwrap_or(1.0);
        check_toxicity(toxicity)?;
        if toxic_views(entry, &BTreeSet::new())
            .iter()
            .any(|t| t.name == toxic_name)
        {
            return Err(ApiError::new(409, "toxic already exists"));
        }
        let attributes = toxic::attributes(&kind, &input.attributes.unwrap_or_default())?;
        if let Some(holder) = &input.lease
            && !self.leases.lock().unwrap().contains_key(holder)
        {
            return Err(ApiError::bad_request(format!(
                "lease {holder} not found: take it with PUT /leases/{holder} first (it may have expired)"
            )));
        }
        let mut t = Toxic {
            name: toxic_name,
            kind,
            stream,
            toxicity,
            attributes,
            lease: input.lease,
            key: None,
        };
        if let Some(proxy) = &entry.proxy {
            t.key = self.add(proxy, &t);
        }
        let v = toxic_view(&t);
        entry.toxics.push(t);
        Ok(v)
    }

    /// `POST /proxies/{name}/toxics/{toxic}`: a partial update of
    /// attributes and toxicity.
    pub async fn update_toxic(
        &self,
        name: &str,
        toxic: &str,
        input: ToxicInput,
    ) -> Result<ToxicView, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let proxy = entry.proxy.clone();
        let t = entry
            .toxics
            .iter_mut()
            .find(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)?;
        let mut merged = t.attributes.clone();
        for (k, v) in input.attributes.unwrap_or_default() {
            merged.insert(k, v);
        }
        // Both checked before either changes: a refused update leaves the
        // toxic as it was.
        let attributes = toxic::attributes(&t.kind, &merged)?;
        if let Some(p) = input.toxicity {
            check_toxicity(p)?;
            t.toxicity = p;
        }
        t.attributes = attributes;
        if let Some(proxy) = proxy {
            let old = t.key.take();
            t.key = self.add(&proxy, t);
            if let Some(old) = old {
                proxy.remove_fault(old);
            }
        }
        Ok(toxic_view(t))
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        if let Some(i) = entry.toxics.iter().position(|t| t.name == toxic) {
            let t = entry.toxics.remove(i);
            if let (Some(proxy), Some(key)) = (&entry.proxy, t.key) {
                proxy.remove_fault(key);
            }
            return Ok(());
        }
        // A fault made by a scenario or the library, listed under its name.
        if let Some(proxy) = &entry.proxy
            && let Some(f) = proxy
                .faults()
                .iter()
                .find(|f| f.name.is_none() && fault_name(f) == toxic)
        {
            proxy.remove_fault(f.key);
            return Ok(());
        }
        Err(ApiError::toxic_not_found())
    }

    /// `PUT /leases/{holder}`: take or renew a lease for `ttl`; a sealed
    /// lease stays sealed.
    pub async fn renew(
        &self,
        holder: &str,
        ttl: Duration,
        sealed: bool,
    ) -> Result<LeaseView, ApiError> {
        check_name("holder", holder, "")?;
        if !LEASE_TTL.contains(&ttl) {
            return Err(ApiError::bad_request(format!(
                "lease ttl of {} ms is out of range: give 100 to 3600000",
                ttl.as_millis()
            )));
        }
        {
            let mut leases = self.leases.lock().unwrap();
            let sealed = sealed || leases.get(holder).is_some_and(|l| l.sealed);
            leases.insert(
                holder.to_string(),
                Lease {
                    ttl,
                    expires: Instant::now() + ttl,
                    sealed,
                },
            );
        }
        let proxies = self.proxies.lock().await;
        Ok(LeaseView {
            holder: holder.to_string(),
            ttl: ttl.as_millis() as u64,
            toxics: held_by(&proxies, holder),
        })
    }

    /// `GET /leases`.
    pub async fn leases(&self) -> Vec<LeaseView> {
        let leases: Vec<(String, Duration)> = self
            .leases
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| !l.sealed)
            .map(|(h, l)| (h.clone(), l.ttl))
            .collect();
        let proxies = self.proxies.lock().await;
        leases
            .into_iter()
            .map(|(holder, ttl)| LeaseView {
                toxics: held_by(&proxies, &holder),
                holder,
                ttl: ttl.as_millis() as u64,
            })
            .collect()
    }

    /// `DELETE /leases/{holder}`: end a lease and remove its toxics; how
    /// many were removed.
    pub async fn release(&self, holder: &str) -> Result<usize, ApiError> {
        if self.leases.lock().unwrap().remove(holder).is_none() {
            return Err(ApiError::new(404, "lease not found"));
        }
        Ok(self.remove_leased(&[holder.to_string()]).await)
    }

    /// The dead-man's switch: end every lease not renewed within its ttl
    /// and remove its toxics. Returns each expired holder with the number
    /// of toxics removed. Call it often: a toxic outlives its holder by at
    /// most the ttl plus the calling period.
    pub async fn expire(&self) -> Vec<(String, usize)> {
        let now = Instant::now();
        let expired: Vec<String> = {
            let mut leases = self.leases.lock().unwrap();
            let (gone, live): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut *leases)
                .into_iter()
                .partition(|(_, l)| l.expires <= now);
            *leases = live;
            gone.into_keys().collect()
        };
        let mut out = Vec::new();
        for holder in expired {
            let n = self.remove_leased(std::slice::from_ref(&holder)).await;
            out.push((holder, n));
        }
        out
    }

    async fn remove_leased(&self, holders: &[String]) -> usize {
        let mut proxies = self.proxies.lock().await;
        let mut removed = 0;
        for entry in proxies.values_mut() {
            let (gone, kept): (Vec<Toxic>, Vec<Toxic>) = std::mem::take(&mut entry.toxics)
                .into_iter()
                .partition(|t| t.lease.as_ref().is_some_and(|h| holders.contains(h)));
            entry.toxics = kept;
            for t in gone {
                removed += 1;
                if let (Some(proxy), Some(key)) = (&entry.proxy, t.key) {
                    proxy.remove_fault(key);
                }
            }
        }
        removed
    }

    /// Prometheus text exposition of every proxy's counters.
    pub async fn metrics(&self) -> String {
        use std::fmt::Write;
        type Read = fn(&Proxy) -> u64;
        /// Name, type, help, and per proxy the values with the extra label
        /// that tells them apart.
        type Series = (
            &'static str,
            &'static str,
            &'static str,
            &'static [(&'static str, Read)],
        );
        fn load(a: &AtomicU64) -> u64 {
            a.load(Ordering::Relaxed)
        }
        let series: [Series; 5] = [
            (
                "toxiproxy_proxy_sent_bytes_total",
                "counter",
                "Bytes the proxy wrote, by direction.",
                &[
                    ("direction=\"upstream\",", |p| p.stats().bytes_up.get()),
                    ("direction=\"downstream\",", |p| p.stats().bytes_down.get()),
                ],
            ),
            (
                "firedrill_proxy_connections_total",
                "counter",
                "Client connections accepted.",
                &[("", |p| load(&p.stats().connections))],
            ),
            (
                "firedrill_proxy_open_connections",
                "gauge",
                "Client connections open now.",
                &[("", |p| load(&p.stats().open))],
            ),
            (
                "firedrill_proxy_refused_total",
                "counter",
                "Connections refused or reset at accept by a refuse fault.",
                &[("", |p| load(&p.stats().refused))],
            ),
            (
                "firedrill_proxy_toxics",
                "gauge",
                "Toxics and faults active on the proxy.",
                &[("", |p| p.fault_count() as u64)],
            ),
        ];
        let hidden = self.sealed();
        let proxies = self.proxies.lock().await;
        let mut out = String::new();
        for (metric, kind, help, values) in &series {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for (name, e) in proxies.iter() {
                let Some(p) = &e.proxy else { continue };
                for (extra, read) in values.iter() {
                    let mut value = read(p);
                    if *metric == "firedrill_proxy_toxics" {
                        let sealed = e
                            .toxics
                            .iter()
                            .filter(|t| t.lease.as_ref().is_some_and(|l| hidden.contains(l)))
                            .count();
                        value = value.saturating_sub(sealed as u64);
                    }
                    let _ = writeln!(
                        out,
                        "{metric}{{{extra}proxy=\"{}\",listener=\"{}\",upstream=\"{}\"}} {}",
                        escape(name),
                        escape(&e.listen),
                        escape(&e.upstream),
                        value
                    );
                }
            }
        }
        out
    }

    /// Stop every proxy.
    pub async fn shutdown(&self) {
        for entry in self.proxies.lock().await.values_mut() {
            stop(entry).await;
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn required(input: &ProxyInput, at: Option<usize>) -> Result<(String, String), ApiError> {
    let suffix = at.map(|i| format!(" at proxy {i}")).unwrap_or_default();
    let name = input.name.clone().filter(|n| !n.is_empty());
    let name =
        name.ok_or_else(|| ApiError::bad_request(format!("missing required field: name{suffix}")))?;
    check_name("name", &name, &suffix)?;
    let upstream = input.upstream.clone().filter(|n| !n.is_empty());
    let upstream = upstream.ok_or_else(|| {
        ApiError::bad_request(format!("missing required field: upstream{suffix}"))
    })?;
    Ok((name, upstream))
}

async fn stop(entry: &mut Entry) {
    if let Some(p) = entry.proxy.take() {
        p.stop().await;
    }
    for t in &mut entry.toxics {
        t.key = None;
    }
}

/// `host:port` as Toxiproxy reads it: an empty host (or an empty address)
/// means every interface.
async fn resolve_listen(listen: &str) -> Result<SocketAddr, ApiError> {
    let text = match listen {
        "" => "[::]:0".to_string(),
        l if l.starts_with(':') => format!("[::]{l}"),
        l => l.to_string(),
    };
    let mut addrs = tokio::net::lookup_host(&text)
        .await
        .map_err(|e| ApiError::new(500, format!("listen tcp {listen}: {e}")))?
        .collect::<Vec<_>>();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::new(500, format!("listen tcp {listen}: no address")))
}

fn root_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "bind: address already in use".into(),
        _ => e.to_string(),
    }
}

fn view(name: &str, e: &Entry, hidden: &BTreeSet<String>) -> ProxyView {
    ProxyView {
        name: name.to_string(),
        listen: e.listen.clone(),
        upstream: e.upstream.clone(),
        enabled: e.proxy.is_some(),
        toxics: toxic_views(e, hidden),
    }
}

fn toxic_view(t: &Toxic) -> ToxicView {
    ToxicView {
        attributes: Value::Object(t.attributes.clone()),
        name: t.name.clone(),
        kind: t.kind.clone(),
        stream: stream_name(t.stream).into(),
        toxicity: toxicity_json(t.toxicity),
        lease: t.lease.clone(),
    }
}

fn held_by(proxies: &BTreeMap<String, Entry>, holder: &str) -> usize {
    proxies
        .values()
        .flat_map(|e| &e.toxics)
        .filter(|t| t.lease.as_deref() == Some(holder))
        .count()
}

fn fault_name(f: &ProxyFault) -> String {
    format!("{}_firedrill_{}", toxic::describe(&f.effect).0, f.key)
}

/// The toxics of `e` and, after them, faults on its proxy that no toxic
/// made; upstream stream first, as Toxiproxy lists them.
fn toxic_views(e: &Entry, hidden: &BTreeSet<String>) -> Vec<ToxicView> {
    let mut all: Vec<ToxicView> = e
        .toxics
        .iter()
        .filter(|t| !t.lease.as_ref().is_some_and(|l| hidden.contains(l)))
        .map(toxic_view)
        .collect();
    if let Some(p) = &e.proxy {
        for f in p.faults().iter().filter(|f| f.name.is_none()) {
            let (kind, attributes) = toxic::describe(&f.effect);
            all.push(ToxicView {
                attributes,
                name: fault_name(f),
                kind: kind.into(),
                stream: f
                    .effect
                    .direction()
                    .map_or("downstream", stream_name)
                    .into(),
                toxicity: toxicity_json(f.probability),
                lease: None,
            });
        }
    }
    all.sort_by_key(|t| t.stream != "upstream");
    all
}
