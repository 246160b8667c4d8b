//! What the platform stores: users, teams with their roles and grants,
//! registered targets, API tokens, sessions, the audit log, and which
//! team launched which run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A role in a team, ordered: each may do what the ones before it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Catalog, runs, history.
    #[default]
    Viewer,
    /// Launch and halt runs within the team's grants.
    Runner,
    /// Publish packages to the team's namespaces.
    Publisher,
    /// The team's own members and their roles, and halting every run of
    /// the team. (Teams, users, targets, grants — the blast radius — and
    /// the server-wide halt-all are a server administrator's.)
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Runner, Role::Publisher, Role::Admin];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Runner => "runner",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct User {
    /// Login name.
    pub name: String,
    /// The password's argon2id hash (PHC string), if one is set.
    #[serde(default)]
    pub password: Option<String>,
    /// An administrator of the whole server (every team, halt-all).
    #[serde(default)]
    pub admin: bool,
    /// Its role in each team.
    #[serde(default)]
    pub teams: BTreeMap<String, Role>,
    /// When it was made (Unix ms).
    pub created_at: u64,
}

impl User {
    /// Its role in `team` (administrators are admins of every team).
    pub fn role_in(&self, team: &str) -> Option<Role> {
        if self.admin {
            return Some(Role::Admin);
        }
        self.teams.get(team).copied()
    }

    /// Its highest role in any team.
    pub fn highest_role(&self) -> Option<Role> {
        if self.admin {
            return Some(Role::Admin);
        }
        self.teams.values().max().copied()
    }

    /// What the API shows of it (never the hash).
    pub fn view(&self) -> UserView {
        UserView {
            name: self.name.clone(),
            admin: self.admin,
            teams: self.teams.clone(),
            has_password: self.password.is_some(),
            created_at: self.created_at,
        }
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// A server administrator.
    pub admin: bool,
    /// Its role in each team.
    pub teams: BTreeMap<String, Role>,
    /// Whether it can log in with a password.
    pub has_password: bool,
    /// When it was made (Unix ms).
    pub created_at: u64,
}

/// A team: its members are in [`User::teams`]; what it may do to which
/// registered target is its grants (its maximum blast radius).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Team {
    /// Its name.
    pub name: String,
    /// Fault kinds (as drill files name them) per registered target.
    #[serde(default)]
    pub grants: BTreeMap<String, BTreeSet<String>>,
    /// The package namespaces its publishers publish to.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// When it was made (Unix ms).
    pub created_at: u64,
}

/// A target an admin registered: a drill file's `[targets.NAME]` table
/// without `grants` (teams get those).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Target {
    /// Its name.
    pub name: String,
    /// The declaration, as a drill file's keys (`kind`, `listen`,
    /// `upstream`, `pid_file`, …).
    pub declaration: serde_json::Map<String, serde_json::Value>,
    /// When it was registered (Unix ms).
    pub created_at: u64,
}

/// An API token; the secret itself is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Token {
    /// Its public id (to list and revoke it).
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// What it is for.
    pub name: String,
    /// When it was made (Unix ms).
    pub created_at: u64,
    /// When it stops working (Unix ms), if ever.
    pub expires_at: Option<u64>,
    /// Revoked: it no longer works.
    #[serde(default)]
    pub revoked: bool,
}

/// A browser session; its id is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// Whose it is.
    pub user: String,
    /// The token every state-changing request of this session carries.
    pub csrf: String,
    /// When it stops working (Unix ms).
    pub expires_at: u64,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// When (Unix ms).
    pub at: u64,
    /// Who (a user name, or what tried to be one).
    pub actor: String,
    /// What: `login`, `launch`, `halt`, `grant`, …
    pub action: String,
    /// On what.
    pub subject: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// More, when there is more to say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A run launched through the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaunchedRun {
    /// The engine's run id.
    pub run: String,
    /// The team it ran for.
    pub team: String,
    /// Who launched it.
    pub launched_by: String,
    /// The package requirement it was launched with.
    pub scenario: String,
    /// When (Unix ms).
    pub at: u64,
}

/// Where to say that a run ended: a JSON `POST`, signed with HMAC-SHA256
/// (`x-firedrill-signature: sha256=<hex>`) under a secret shown once at
/// registration. The secret is stored as it is, since signing needs it:
/// it lets a receiver trust firedrill, not anyone into firedrill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Webhook {
    /// Its name.
    pub name: String,
    /// The URL to `POST` to.
    pub url: String,
    /// Only runs of these teams (none: every team).
    #[serde(default)]
    pub teams: Vec<String>,
    /// The signing secret (never shown after registration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// When it was registered (Unix ms).
    pub created_at: u64,
}

/// An alert Alertmanager delivered (its webhook payload, version 4): the
/// signal by which teams notice incidents, and how game days will time
/// detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertRecord {
    /// When firedrill received it (Unix ms).
    pub received_at: u64,
    /// Its `alertname` label.
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it started, as Alertmanager says (RFC 3339).
    #[serde(default)]
    pub starts_at: String,
    /// Alertmanager's fingerprint.
    #[serde(default)]
    pub fingerprint: String,
    /// The Alertmanager receiver that sent it.
    #[serde(default)]
    pub receiver: String,
}
