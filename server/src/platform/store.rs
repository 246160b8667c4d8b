//! The platform's records in a sled database at `<data-dir>/server`, one
//! tree per kind (names below), values as JSON. Secrets are keyed by their
//! SHA-256, so the database holds no usable token or session id.

use super::gameday::GameDay;
use super::model::{
    AlertRecord, AuditEntry, LaunchedRun, Session, Target, Team, Token, User, Webhook,
};
use super::schedule::Schedule;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Users by name.
pub const TREE_USERS: &str = "users";
/// Teams by name.
pub const TREE_TEAMS: &str = "teams";
/// Registered targets by name.
pub const TREE_TARGETS: &str = "targets";
/// Tokens by the SHA-256 of their secret.
pub const TREE_TOKENS: &str = "tokens";
/// Token secret hashes by public id.
pub const TREE_TOKEN_IDS: &str = "token_ids";
/// Sessions by the SHA-256 of their id.
pub const TREE_SESSIONS: &str = "sessions";
/// The audit log by a big-endian sequence number (append-only).
pub const TREE_AUDIT: &str = "audit";
/// Runs launched through the server, by run id.
pub const TREE_RUNS: &str = "runs";
/// Schedules by id.
pub const TREE_SCHEDULES: &str = "schedules";
/// Webhooks by name.
pub const TREE_WEBHOOKS: &str = "webhooks";
/// Alerts Alertmanager delivered, by a big-endian sequence number.
pub const TREE_ALERTS: &str = "alerts";
/// Game days by id.
pub const TREE_GAMEDAYS: &str = "gamedays";

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("the server's database: {0}")]
pub struct StoreError(String);

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError(format!("a damaged record: {e}"))
    }
}

/// The opened database.
#[derive(Debug, Clone)]
pub struct PlatformStore {
    db: sled::Db,
    users: sled::Tree,
    teams: sled::Tree,
    targets: sled::Tree,
    tokens: sled::Tree,
    token_ids: sled::Tree,
    sessions: sled::Tree,
    audit: sled::Tree,
    runs: sled::Tree,
    schedules: sled::Tree,
    webhooks: sled::Tree,
    alerts: sled::Tree,
    gamedays: sled::Tree,
}

fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

fn put<T: Serialize>(tree: &sled::Tree, key: &[u8], value: &T) -> Result<(), StoreError> {
    tree.insert(key, serde_json::to_vec(value)?)?;
    Ok(())
}

fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
    tree.iter()
        .values()
        .map(|v| Ok(serde_json::from_slice(&v?)?))
        .collect()
}

impl PlatformStore {
    /// Open (or create) `<data_dir>/server`.
    pub fn open(data_dir: &Path) -> Result<PlatformStore, StoreError> {
        let db = sled::Config::new()
            .path(data_dir.join("server"))
            .flush_every_ms(Some(100))
            .open()
            .map_err(|e| {
                StoreError(format!(
                    "{}: {e} (is another `firedrill serve` running on this data dir?)",
                    data_dir.join("server").display()
                ))
            })?;
        Self::from_db(db)
    }

    /// A throwaway in-memory store.
    pub fn temporary() -> Result<PlatformStore, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<PlatformStore, StoreError> {
        Ok(PlatformStore {
            users: db.open_tree(TREE_USERS)?,
            teams: db.open_tree(TREE_TEAMS)?,
            targets: db.open_tree(TREE_TARGETS)?,
            tokens: db.open_tree(TREE_TOKENS)?,
            token_ids: db.open_tree(TREE_TOKEN_IDS)?,
            sessions: db.open_tree(TREE_SESSIONS)?,
            audit: db.open_tree(TREE_AUDIT)?,
            runs: db.open_tree(TREE_RUNS)?,
            schedules: db.open_tree(TREE_SCHEDULES)?,
            webhooks: db.open_tree(TREE_WEBHOOKS)?,
            alerts: db.open_tree(TREE_ALERTS)?,
            gamedays: db.open_tree(TREE_GAMEDAYS)?,
            db,
        })
    }

    /// A user.
    pub fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        get(&self.users, name.as_bytes())
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        all(&self.users)
    }

    /// Write a user.
    pub fn put_user(&self, user: &User) -> Result<(), StoreError> {
        put(&self.users, user.name.as_bytes(), user)
    }

    /// Remove a user, its tokens and its sessions.
    pub fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        for (hash, token) in self.tokens_with_hashes()? {
            if token.user == name {
                self.tokens.remove(hash.as_bytes())?;
                self.token_ids.remove(token.id.as_bytes())?;
            }
        }
        for item in self.sessions.iter() {
            let (k, v) = item?;
            if serde_json::from_slice::<Session>(&v).is_ok_and(|s| s.user == name) {
                self.sessions.remove(k)?;
            }
        }
        Ok(self.users.remove(name.as_bytes())?.is_some())
    }

    /// A team.
    pub fn team(&self, name: &str) -> Result<Option<Team>, StoreError> {
        get(&self.teams, name.as_bytes())
    }

    /// Every team, by name.
    pub fn teams(&self) -> Result<Vec<Team>, StoreError> {
        all(&self.teams)
    }

    /// Write a team.
    pub fn put_team(&self, team: &Team) -> Result<(), StoreError> {
        put(&self.teams, team.name.as_bytes(), team)
    }

    /// A registered target.
    pub fn target(&self, name: &str) -> Result<Option<Target>, StoreError> {
        get(&self.targets, name.as_bytes())
    }

    /// Every registered target, by name.
    pub fn targets(&self) -> Result<Vec<Target>, StoreError> {
        all(&self.targets)
    }

    /// Register (or replace) a target.
    pub fn put_target(&self, target: &Target) -> Result<(), StoreError> {
        put(&self.targets, target.name.as_bytes(), target)
    }

    /// Remove a target.
    pub fn remove_target(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.targets.remove(name.as_bytes())?.is_some())
    }

    /// The token whose secret hashes to `hash`.
    pub fn token(&self, hash: &str) -> Result<Option<Token>, StoreError> {
        get(&self.tokens, hash.as_bytes())
    }

    fn tokens_with_hashes(&self) -> Result<Vec<(String, Token)>, StoreError> {
        self.tokens
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    serde_json::from_slice(&v)?,
                ))
            })
            .collect()
    }

    /// Every token.
    pub fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        Ok(self
            .tokens_with_hashes()?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    /// Store a token under its secret's hash.
    pub fn put_token(&self, hash: &str, token: &Token) -> Result<(), StoreError> {
        put(&self.tokens, hash.as_bytes(), token)?;
        self.token_ids
            .insert(token.id.as_bytes(), hash.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Revoke a token by its public id; the token, if there is one.
    pub fn revoke_token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        let Some(hash) = self.token_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        let Some(mut token) = get::<Token>(&self.tokens, &hash)? else {
            return Ok(None);
        };
        token.revoked = true;
        put(&self.tokens, &hash, &token)?;
        self.db.flush()?;
        Ok(Some(token))
    }

    /// The token with public id `id`.
    pub fn token_by_id(&self, id: &str) -> Result<Option<Token>, StoreError> {
        match self.token_ids.get(id.as_bytes())? {
            Some(hash) => get(&self.tokens, &hash),
            None => Ok(None),
        }
    }

    /// The session whose id hashes to `hash`.
    pub fn session(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        get(&self.sessions, hash.as_bytes())
    }

    /// Store a session under its id's hash.
    pub fn put_session(&self, hash: &str, session: &Session) -> Result<(), StoreError> {
        put(&self.sessions, hash.as_bytes(), session)
    }

    /// End a session.
    pub fn remove_session(&self, hash: &str) -> Result<(), StoreError> {
        self.sessions.remove(hash.as_bytes())?;
        Ok(())
    }

    /// Append to the audit log (flushed before it returns: the log is
    /// evidence).
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        put(&self.audit, &id.to_be_bytes(), entry)?;
        self.audit.flush()?;
        Ok(())
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        all(&self.audit)
    }

    /// Record a launched run.
    pub fn put_run(&self, run: &LaunchedRun) -> Result<(), StoreError> {
        put(&self.runs, run.run.as_bytes(), run)
    }

    /// A launched run.
    pub fn run(&self, id: &str) -> Result<Option<LaunchedRun>, StoreError> {
        get(&self.runs, id.as_bytes())
    }

    /// Every launched run, oldest first.
    pub fn runs(&self) -> Result<Vec<LaunchedRun>, StoreError> {
        let mut runs: Vec<LaunchedRun> = all(&self.runs)?;
        runs.sort_by_key(|r| r.at);
        Ok(runs)
    }

    /// A schedule.
    pub fn schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        get(&self.schedules, id.as_bytes())
    }

    /// Every schedule.
    pub fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        all(&self.schedules)
    }

    /// Write a schedule.
    pub fn put_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        put(&self.schedules, schedule.id.as_bytes(), schedule)
    }

    /// Remove a schedule.
    pub fn remove_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.schedules.remove(id.as_bytes())?.is_some())
    }

    /// Every webhook.
    pub fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        all(&self.webhooks)
    }

    /// Register (or replace) a webhook.
    pub fn put_webhook(&self, hook: &Webhook) -> Result<(), StoreError> {
        put(&self.webhooks, hook.name.as_bytes(), hook)
    }

    /// Remove a webhook.
    pub fn remove_webhook(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.webhooks.remove(name.as_bytes())?.is_some())
    }

    /// Record an alert.
    pub fn put_alert(&self, alert: &AlertRecord) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        put(&self.alerts, &id.to_be_bytes(), alert)
    }

    /// Every alert received, oldest first.
    pub fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        all(&self.alerts)
    }

    /// A game day.
    pub fn gameday(&self, id: &str) -> Result<Option<GameDay>, StoreError> {
        get(&self.gamedays, id.as_bytes())
    }

    /// Every game day, by id.
    pub fn gamedays(&self) -> Result<Vec<GameDay>, StoreError> {
        all(&self.gamedays)
    }

    /// Store a game day.
    pub fn put_gameday(&self, gd: &GameDay) -> Result<(), StoreError> {
        put(&self.gamedays, gd.id.as_bytes(), gd)
    }
}
