//! Reports of a finished run for pipelines: the principal type is
//! [`RunReport`] (the run, its timeline and its ledger entries), written as
//! JUnit XML ([`RunReport::junit`]), versioned JSON ([`RunReport::json`],
//! schema in `docs/schema/run-report.v1.json`) or a Markdown summary fit for
//! a pull-request comment ([`RunReport::markdown`]).

use crate::engine::Engine;
use crate::history::{Event, EventKind, Phase, Run, RunId, RunStatus};
use crate::ledger::{LedgerEntry, LedgerState};
use crate::store::StoreError;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event as Xml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The value of [`RunReport::schema`] this build writes.
pub const SCHEMA: &str = "firedrill/run-report/v1";

/// Everything known about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunReport {
    /// Always [`SCHEMA`]; a new version is a new schema file.
    pub schema: String,
    /// The run.
    pub run: Run,
    /// Its timeline.
    pub timeline: Vec<Event>,
    /// Its faults as the ledger holds them.
    pub faults: Vec<LedgerEntry>,
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
            faults: engine.ledger().entries(id)?,
            run,
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
        let props = [
            ("run", self.run.id.to_string()),
            ("status", self.run.status.to_string()),
            ("scenario.version", self.run.scenario.version.clone()),
            ("scenario.sha256", self.run.scenario.sha256.clone()),
            ("seed", self.run.seed.to_string()),
            ("engine", self.run.engine_version.clone()),
        ];
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
