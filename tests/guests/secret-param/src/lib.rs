//! A guest that declares `pin` secret in `describe()` (its name does not
//! look like a secret) and lets the value reach everything a run records:
//! a log line, an event, its stdout, a probe's request header and its
//! outcome's summary. None of it may show the value.

use firedrill_sdk::*;

struct SecretParam;

impl Scenario for SecretParam {
    fn describe() -> Metadata {
        Metadata::new("secret-param", "0.1.0", "Echoes a secret parameter.")
            .param("pin", ParamType::String, None, "The account's PIN")
            .secret()
            .param("label", ParamType::String, Some("plain"), "Shown as is")
            .param(
                "target",
                ParamType::String,
                Some(""),
                "An HTTP target to probe",
            )
    }

    fn run() -> Result<Outcome, Error> {
        let pin = host::param_or("pin", "");
        let label = host::param_or("label", "");
        host::log(
            Level::Info,
            &format!("logging in with pin {pin} as {label}"),
        );
        host::event("pin", &pin);
        println!("stdout pin={pin}");
        let target = host::param_or("target", "");
        if !target.is_empty() {
            let _ = probes::http(
                &target,
                &HttpRequest {
                    method: "GET".into(),
                    path: "/".into(),
                    headers: vec![("x-pin".into(), pin.clone())],
                    body: Vec::new(),
                    timeout: None,
                },
            );
        }
        Ok(Outcome::pass(format!("used pin {pin} for {label}")))
    }
}

export_scenario!(SecretParam);
