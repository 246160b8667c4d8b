//! Reports of a finished run for pipelines: the principal type is
//! [`RunReport`] (the run, its timeline and its ledger entries), written as
//! JUnit XML ([`RunReport::junit`]), versioned JSON ([`RunReport::json`],
//! schema in `docs/schema/run-report.v2.json`) or a Markdown summary fit for
//! a pull-request comment ([`RunReport::markdown`]).
//!
//! The JSON report is read by tools that parse numbers as doubles (jq,
//! JavaScript), so the run's id and seed, which use all 64 bits, are
//! strings there: the id as `firedrill show` and `replay` take it, the seed
//! in decimal as `--seed` takes it. History keeps them as numbers (the
//! stored format is unchanged); [`ReportRun`] and [`ReportFault`] are the
//! report's own view of [`Run`] and [`LedgerEntry`].

use crate::engine::Engine;
use crate::history::{Event, EventKind, Outcome, Phase, Run, RunId, RunStatus, ScenarioRef};
use crate::ledger::{LedgerEntry, LedgerState, Undo};
use crate::store::StoreError;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event as Xml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The value of [`RunReport::schema`] this build writes. v2: `run.id` and
/// `faults[].run` are the run id string (16 hex digits), `run.seed` a
/// decimal string.
pub const SCHEMA: &str = "firedrill/run-report/v2";

/// Everything known about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunReport {
    /// Always [`SCHEMA`]; a new version is a new schema file.
    pub schema: String,
    /// The run.
    pub run: ReportRun,
    /// Its timeline.
    pub timeline: Vec<Event>,
    /// Its faults as the ledger holds them.
    pub faults: Vec<ReportFault>,
}

/// A run as the report shows it: [`Run`] with the id and seed as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportRun {
    /// Id, time-sortable: 16 hex digits, as `firedrill show` and `firedrill replay` take it.
    #[serde(with = "id_text")]
    #[schemars(with = "String", pattern(r"^[0-9a-f]{16}$"))]
    pub id: RunId,
    /// The scenario.
    pub scenario: ScenarioRef,
    /// Parameters after defaults were applied.
    pub params: BTreeMap<String, String>,
    /// Seed of the run's generator, in decimal as `--seed` takes it (a
    /// string: it may not fit a double).
    #[serde(with = "seed_text")]
    #[schemars(with = "String", pattern(r"^[0-9]{1,20}$"))]
    pub seed: u64,
    /// firedrill version that ran it.
    pub engine_version: String,
    /// The drill file, if any.
    pub drill: Option<String>,
    /// The drill's text, so the run can be replayed with the same targets.
    pub drill_text: Option<String>,
    /// True when faults were planned but not applied.
    pub dry_run: bool,
    /// Start, Unix ms.
    pub started_at: u64,
    /// End, Unix ms.
    pub ended_at: Option<u64>,
    /// Status.
    pub status: RunStatus,
    /// What the scenario returned, if it returned.
    pub outcome: Option<Outcome>,
    /// Why it did not pass, in words, when there is a cause beyond the
    /// verdict (a trap, a violated check, a failed revert).
    pub error: Option<String>,
}

impl From<Run> for ReportRun {
    fn from(run: Run) -> ReportRun {
        // Destructured whole so a field added to `Run` fails to compile here
        // instead of silently missing from reports.
        let params = run.masked_params();
        let Run {
            id,
            scenario,
            params: _,
            seed,
            engine_version,
            drill,
            drill_text,
            dry_run,
            started_at,
            ended_at,
            status,
            outcome,
            error,
            // Masked in `params` above; which ones are secret is no one's
            // business in a report.
            secret_params: _,
        } = run;
        ReportRun {
            id,
            scenario,
            params,
            seed,
            engine_version,
            drill,
            drill_text,
            dry_run,
            started_at,
            ended_at,
            status,
            outcome,
            error,
        }
    }
}

/// A ledger entry as the report shows it: [`LedgerEntry`] with the run id
/// as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportFault {
    /// The run that made it: 16 hex digits, as `run.id`.
    #[serde(with = "id_text")]
    #[schemars(with = "String", pattern(r"^[0-9a-f]{16}$"))]
    pub run: RunId,
    /// Fault id within the run (ids of spawned targets count down from u32::MAX).
    pub fault: u32,
    /// Fault kind, e.g. `pause`.
    pub kind: String,
    /// Target name.
    pub target: String,
    /// How to undo it.
    pub undo: Undo,
    /// Where it stands.
    pub state: LedgerState,
    /// When it was written, Unix ms.
    pub applied_at: u64,
    /// When it was reverted, Unix ms.
    pub reverted_at: Option<u64>,
    /// The undo's error, if it failed.
    pub error: Option<String>,
}

impl From<LedgerEntry> for ReportFault {
    fn from(entry: LedgerEntry) -> ReportFault {
        // Destructured whole, as for `ReportRun`.
        let LedgerEntry {
            run,
            fault,
            kind,
            target,
            undo,
            state,
            applied_at,
            reverted_at,
            error,
        } = entry;
        ReportFault {
            run,
            fault,
            kind,
            target,
            undo,
            state,
            applied_at,
            reverted_at,
            error,
        }
    }
}

/// A [`RunId`] as its display string.
mod id_text {
    use crate::history::RunId;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(id: &RunId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunId, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A u64 as a decimal string.
mod seed_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(seed: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(seed)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| D::Error::custom(format!("seed `{text}`: {e}")))
    }
}

/// One JUnit test case.
struct Case {
    name: String,
    /// `(type, message, text)` of a failure.
    failure: Option<(&'static str, String, String)>,
    /// `(type, message, text)` of an error (the run could not judge).
    error: Option<(&'static str, String, String)>,
}

impl RunReport {
    /// The report of run `id` from `engine`'s history.
    pub fn load(engine: &Engine, id: RunId) -> Result<Option<RunReport>, StoreError> {
        let Some(run) = engine.history().get_run(id)? else {
            return Ok(None);
        };
        Ok(Some(RunReport {
            schema: SCHEMA.into(),
            timeline: engine.history().timeline(id)?,
            faults: engine
                .ledger()
                .entries(id)?
                .into_iter()
                .map(ReportFault::from)
                .collect(),
            run: run.into(),
        }))
    }

    /// Pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// The JSON Schema of [`RunReport`].
    pub fn json_schema() -> String {
        serde_json::to_string_pretty(&schemars::schema_for!(RunReport)).expect("schemas serialize")
            + "\n"
    }

    fn name(&self) -> &str {
        if self.run.scenario.name.is_empty() {
            &self.run.scenario.source
        } else {
            &self.run.scenario.name
        }
    }

    fn seconds(&self) -> f64 {
        self.run
            .ended_at
            .unwrap_or(self.run.started_at)
            .saturating_sub(self.run.started_at) as f64
            / 1000.0
    }

    /// Test cases: one per steady-state check and phase, one for the
    /// scenario's verdict, one per fault that could not be reverted.
    fn cases(&self) -> Vec<Case> {
        let mut cases = Vec::new();
        let mut checks: BTreeMap<(Phase, String), (usize, Vec<String>)> = BTreeMap::new();
        for e in &self.timeline {
            if let EventKind::Check {
                name,
                phase,
                ok,
                detail,
            } = &e.kind
            {
                let entry = checks.entry((*phase, name.clone())).or_default();
                entry.0 += 1;
                if !ok {
                    entry.1.push(detail.clone());
                }
            }
        }
        for ((phase, name), (count, failures)) in checks {
            cases.push(Case {
                name: format!("steady state {phase}: {name}"),
                failure: (!failures.is_empty()).then(|| {
                    (
                        "steady-state",
                        format!(
                            "`{name}` failed {} of {count} check(s) {phase} the run: {}",
                            failures.len(),
                            failures[0]
                        ),
                        failures.join("\n"),
                    )
                }),
                error: None,
            });
        }
        let cause = self.run.error.clone().unwrap_or_default();
        let findings = self
            .run
            .outcome
            .iter()
            .flat_map(|o| &o.findings)
            .map(|f| format!("[{}] {}: {}", f.severity, f.title, f.detail))
            .collect::<Vec<_>>()
            .join("\n");
        let (failure, error) = match self.run.status {
            RunStatus::Passed | RunStatus::SteadyStateViolated | RunStatus::RevertFailed => {
                (None, None)
            }
            RunStatus::Failed => (
                Some((
                    "verdict",
                    format!(
                        "the scenario's verdict was fail: {}",
                        self.run
                            .outcome
                            .as_ref()
                            .map(|o| o.summary.as_str())
                            .unwrap_or(&cause)
                    ),
                    findings,
                )),
                None,
            ),
            status => (
                None,
                Some((
                    match status {
                        RunStatus::Halted => "halted",
                        RunStatus::Refused => "refused",
                        RunStatus::Crashed => "crashed",
                        _ => "aborted",
                    },
                    format!("the run was {status}: {cause}"),
                    cause.clone(),
                )),
            ),
        };
        // A run that passed but whose after-checks failed still passed its verdict.
        cases.push(Case {
            name: "scenario verdict".into(),
            failure,
            error,
        });
        for f in self
            .faults
            .iter()
            .filter(|f| f.state == LedgerState::RevertFailed)
        {
            cases.push(Case {
                name: format!("revert fault {} ({} on {})", f.fault, f.kind, f.target),
                failure: Some((
                    "revert-failed",
                    format!(
                        "fault {} ({} on {}) could not be reverted: {}",
                        f.fault,
                        f.kind,
                        f.target,
                        f.error.as_deref().unwrap_or("unknown")
                    ),
                    String::new(),
                )),
                error: None,
            });
        }
        cases
    }

    /// JUnit XML, as CI systems read it.
    pub fn junit(&self) -> String {
        let cases = self.cases();
        let failures = cases
            .iter()
            .filter(|c| c.failure.is_some())
            .count()
            .to_string();
        let errors = cases
            .iter()
            .filter(|c| c.error.is_some())
            .count()
            .to_string();
        let tests = cases.len().to_string();
        let time = format!("{:.3}", self.seconds());
        let suite = format!("firedrill.{}", self.name());
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        let write =
            |w: &mut Writer<Vec<u8>>, e: Xml<'_>| w.write_event(e).expect("writing to memory");
        write(
            &mut w,
            Xml::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
        );
        let mut root = BytesStart::new("testsuites");
        root.extend_attributes([
            ("name", "firedrill"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("time", time.as_str()),
        ]);
        write(&mut w, Xml::Start(root));
        let mut s = BytesStart::new("testsuite");
        let timestamp = crate::history::iso8601(self.run.started_at);
        s.extend_attributes([
            ("name", suite.as_str()),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("skipped", "0"),
            ("time", time.as_str()),
            ("timestamp", timestamp.as_str()),
        ]);
        write(&mut w, Xml::Start(s));
        write(&mut w, Xml::Start(BytesStart::new("properties")));
        let package = self.run.scenario.package.as_ref();
        let package_props = package.into_iter().flat_map(|p| {
            [
                ("package", p.id.clone()),
                ("package.digest", p.digest.clone()),
                ("package.signer", p.signer.clone()),
                ("package.registry", p.registry.clone()),
            ]
        });
        let props = [
            ("run", self.run.id.to_string()),
            ("status", self.run.status.to_string()),
            ("scenario.version", self.run.scenario.version.clone()),
            ("scenario.sha256", self.run.scenario.sha256.clone()),
            ("seed", self.run.seed.to_string()),
            ("engine", self.run.engine_version.clone()),
        ]
        .into_iter()
        .chain(package_props)
        .collect::<Vec<_>>();
        for (k, v) in &props {
            let mut p = BytesStart::new("property");
            p.extend_attributes([("name", *k), ("value", v.as_str())]);
            write(&mut w, Xml::Empty(p));
        }
        write(&mut w, Xml::End(BytesEnd::new("properties")));
        for case in &cases {
            let mut c = BytesStart::new("testcase");
            c.extend_attributes([
                ("classname", suite.as_str()),
                ("name", case.name.as_str()),
                ("time", "0"),
            ]);
            let body = case
                .failure
                .as_ref()
                .map(|f| ("failure", f))
                .or(case.error.as_ref().map(|e| ("error", e)));
            match body {
                None => write(&mut w, Xml::Empty(c)),
                Some((tag, (ty, message, text))) => {
                    write(&mut w, Xml::Start(c));
                    let mut f = BytesStart::new(tag);
                    f.extend_attributes([("type", *ty), ("message", message.as_str())]);
                    write(&mut w, Xml::Start(f));
                    write(&mut w, Xml::Text(BytesText::new(text)));
                    write(&mut w, Xml::End(BytesEnd::new(tag)));
                    write(&mut w, Xml::End(BytesEnd::new("testcase")));
                }
            }
        }
        let out: String = self
            .timeline
            .iter()
            .map(|e| format!("{:9.3}s  {}\n", e.at_us as f64 / 1e6, e.kind))
            .collect();
        write(&mut w, Xml::Start(BytesStart::new("system-out")));
        write(&mut w, Xml::Text(BytesText::new(&out)));
        write(&mut w, Xml::End(BytesEnd::new("system-out")));
        write(&mut w, Xml::End(BytesEnd::new("testsuite")));
        write(&mut w, Xml::End(BytesEnd::new("testsuites")));
        String::from_utf8(w.into_inner()).expect("XML is UTF-8") + "\n"
    }

    /// A short Markdown summary for a pull-request comment or a CI job
    /// summary.
    pub fn markdown(&self) -> String {
        let r = &self.run;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "### firedrill: {} {} — {}\n",
            self.name(),
            r.scenario.version,
            r.status.as_str().to_uppercase()
        );
        let _ = writeln!(
            md,
            "| run | seed | duration | scenario sha256 |\n|---|---|---|---|"
        );
        let _ = writeln!(
            md,
            "| `{}` | {} | {:.1} s | `{}` |\n",
            r.id,
            r.seed,
            self.seconds(),
            &r.scenario.sha256[..r.scenario.sha256.len().min(12)]
        );
        if let Some(p) = &r.scenario.package {
            let _ = writeln!(
                md,
                "**Package:** `{}` (digest `{}`, signed by key `{}`, from {})\n",
                p.id, p.digest, p.signer, p.registry
            );
        }
        if let Some(o) = &r.outcome {
            let _ = writeln!(md, "**Summary:** {}\n", o.summary);
        }
        if let Some(e) = &r.error {
            let _ = writeln!(md, "**Cause:** {e}\n");
        }
        let cases = self.cases();
        let _ = writeln!(md, "| check | result |\n|---|---|");
        for c in &cases {
            let result = match (&c.failure, &c.error) {
                (Some((_, m, _)), _) | (_, Some((_, m, _))) => {
                    format!("**failed**: {}", m.replace('|', "\\|"))
                }
                _ => "ok".into(),
            };
            let _ = writeln!(md, "| {} | {result} |", c.name.replace('|', "\\|"));
        }
        if let Some(o) = r.outcome.as_ref().filter(|o| !o.measurements.is_empty()) {
            let _ = writeln!(md, "\n| measurement | value |\n|---|---|");
            for m in &o.measurements {
                let _ = writeln!(md, "| {} | {} {} |", m.name, m.value, m.unit);
            }
        }
        if let Some(o) = r.outcome.as_ref().filter(|o| !o.findings.is_empty()) {
            let _ = writeln!(md);
            for f in &o.findings {
                let _ = writeln!(md, "- **{}** {}: {}", f.severity, f.title, f.detail);
            }
        }
        let reverted = self
            .faults
            .iter()
            .filter(|f| f.state == LedgerState::Reverted)
            .count();
        let _ = writeln!(
            md,
            "\nFaults: {} in the ledger, {reverted} reverted.",
            self.faults.len()
        );
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_seed_are_strings_and_read_back() {
        let id: RunId = "0191a2b3c4d5e6f7".parse().unwrap();
        let report = RunReport {
            schema: SCHEMA.into(),
            run: ReportRun {
                id,
                scenario: ScenarioRef {
                    name: "s".into(),
                    version: "0.1.0".into(),
                    sha256: String::new(),
                    source: "s.wasm".into(),
                    package: None,
                },
                params: BTreeMap::new(),
                seed: u64::MAX,
                engine_version: String::new(),
                drill: None,
                drill_text: None,
                dry_run: false,
                started_at: 1,
                ended_at: None,
                status: RunStatus::Passed,
                outcome: None,
                error: None,
            },
            timeline: Vec::new(),
            faults: vec![ReportFault {
                run: id,
                fault: 0,
                kind: "pause".into(),
                target: "t".into(),
                undo: Undo::Nothing,
                state: LedgerState::Reverted,
                applied_at: 1,
                reverted_at: Some(2),
                error: None,
            }],
        };
        let v: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(v["run"]["id"], "0191a2b3c4d5e6f7");
        assert_eq!(v["run"]["seed"], "18446744073709551615");
        assert_eq!(v["faults"][0]["run"], "0191a2b3c4d5e6f7");
        assert_eq!(
            serde_json::from_str::<RunReport>(&report.json()).unwrap(),
            report
        );
        let mut v1 = v.clone();
        v1["run"]["seed"] = serde_json::json!(12);
        assert!(
            serde_json::from_value::<RunReport>(v1).is_err(),
            "a v1 seed is not a v2 report"
        );
    }
}
