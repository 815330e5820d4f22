//! Portal accounts: users with a role, argon2id password hashes, sessions, the audit log.
//!
//! A session is a random 256-bit token kept by the browser in an HttpOnly cookie; the database
//! holds only its BLAKE3 hash, so a copy of the database opens no session. Each session has its
//! own CSRF token, which every state-changing request made with the cookie must repeat in the
//! `X-CSRF-Token` header. Failed logins are counted per (address, name) and per address and
//! answered with 429 past a limit.

use crate::store::{StoreError, now_ms};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a user may do. Admins may do everything; teachers upload, edit and share their school's
/// lessons; experts score the competition entries assigned to them; viewers watch, rate and
/// comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Expert,
    Teacher,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Expert, Role::Teacher, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Expert => "expert",
            Role::Teacher => "teacher",
            Role::Admin => "admin",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Role::Viewer => "观众",
            Role::Expert => "评审专家",
            Role::Teacher => "教师",
            Role::Admin => "管理员",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AccountError;
    fn from_str(s: &str) -> Result<Role, AccountError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| AccountError::Invalid(format!("role must be admin, teacher, expert or viewer, not {s:?}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("wrong name or password")]
    BadLogin,
    #[error("too many failed logins from this address; try again in {0} s")]
    Throttled(u64),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("a user named {0:?} exists already")]
    Exists(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Store(StoreError::Sql(e))
    }
}

/// A portal user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub display: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
}

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

fn random_token() -> Result<String, AccountError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(hex::encode(b))
}

fn token_hash(token: &str) -> Vec<u8> {
    blake3::hash(token.as_bytes()).as_bytes().to_vec()
}

fn hasher() -> argon2::Argon2<'static> {
    // argon2id with the OWASP parameters: 19 MiB, 2 passes, 1 lane.
    argon2::Argon2::default()
}

/// The argon2id PHC string of a password.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(hasher().hash_password(password.as_bytes(), &salt).map_err(|e| AccountError::Hash(e.to_string()))?.to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, verified for unknown names so a login takes as long whether or
/// not the name exists.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("unknown user, no password").unwrap_or_default())
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty() && name.chars().count() <= 64 && name.chars().all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if ok { Ok(()) } else { Err(AccountError::Invalid("a user name is 1 to 64 letters, digits, '.', '_', '-' or '@'".into())) }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD || password.len() > 1024 {
        return Err(AccountError::Invalid(format!("a password has at least {MIN_PASSWORD} characters")));
    }
    Ok(())
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User { name: r.get(0)?, display: r.get(1)?, role: role.parse().unwrap_or(Role::Viewer), disabled: r.get::<_, i64>(3)? != 0, created_at: r.get(4)? })
}

pub fn create_user(tx: &Transaction<'_>, name: &str, display: &str, role: Role, password: &str) -> Result<User, AccountError> {
    check_name(name)?;
    check_password(password)?;
    if get_user(tx, name)?.is_some() {
        return Err(AccountError::Exists(name.into()));
    }
    let display = if display.trim().is_empty() { name } else { display.trim() };
    let hash = hash_password(password)?;
    tx.execute(
        "INSERT INTO users (name, display, role, password, disabled, created_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
        params![name, display, role.as_str(), hash, now_ms()],
    )?;
    get_user(tx, name)?.ok_or_else(|| AccountError::NoSuchUser(name.into()))
}

pub fn get_user(conn: &Connection, name: &str) -> Result<Option<User>, AccountError> {
    Ok(conn.query_row("SELECT name, display, role, disabled, created_at FROM users WHERE name = ?1", [name], user_row).optional()?)
}

pub fn list_users(conn: &Connection) -> Result<Vec<User>, AccountError> {
    let mut stmt = conn.prepare("SELECT name, display, role, disabled, created_at FROM users ORDER BY name")?;
    let rows = stmt.query_map([], user_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Changes a user's role, password or disabled flag; a disabled user's sessions end.
pub fn update_user(tx: &Transaction<'_>, name: &str, role: Option<Role>, password: Option<&str>, disabled: Option<bool>) -> Result<User, AccountError> {
    if get_user(tx, name)?.is_none() {
        return Err(AccountError::NoSuchUser(name.into()));
    }
    if let Some(r) = role {
        tx.execute("UPDATE users SET role = ?2 WHERE name = ?1", params![name, r.as_str()])?;
    }
    if let Some(p) = password {
        check_password(p)?;
        tx.execute("UPDATE users SET password = ?2 WHERE name = ?1", params![name, hash_password(p)?])?;
        tx.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
    }
    if let Some(d) = disabled {
        tx.execute("UPDATE users SET disabled = ?2 WHERE name = ?1", params![name, d as i64])?;
        if d {
            tx.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        }
    }
    get_user(tx, name)?.ok_or_else(|| AccountError::NoSuchUser(name.into()))
}

/// A session as the HTTP layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    /// When the session was last marked used (ms); see [`touch`].
    pub seen_at: i64,
}

/// How stale a session's mark may get before a request renews it: most requests (video
/// segments, pages) then only read the database.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// Checks a password and opens a session: (the cookie's token, the session). Verifies against a
/// dummy hash when the name is unknown, so both cases take the same time.
pub fn login(tx: &Transaction<'_>, name: &str, password: &str) -> Result<(String, Session), AccountError> {
    let found: Option<(String, i64)> = tx.query_row("SELECT password, disabled FROM users WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    let ok = match &found {
        Some((phc, disabled)) => verify(password, phc) && *disabled == 0,
        None => {
            let _ = verify(password, dummy_hash());
            false
        }
    };
    if !ok {
        return Err(AccountError::BadLogin);
    }
    let user = get_user(tx, name)?.ok_or(AccountError::BadLogin)?;
    let (token, csrf) = (random_token()?, random_token()?);
    let now = now_ms();
    tx.execute(
        "INSERT INTO sessions (token_hash, user, csrf, created_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![token_hash(&token), name, csrf, now],
    )?;
    Ok((token, Session { user, csrf, seen_at: now }))
}

/// The live session of a cookie token, if any (and marks it used).
pub fn session(conn: &Connection, token: &str) -> Result<Option<Session>, AccountError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let idle_since = now_ms() - SESSION_IDLE.as_millis() as i64;
    let row: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT s.user, s.csrf, s.seen_at FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_hash = ?1 AND s.seen_at > ?2 AND u.disabled = 0",
            params![token_hash(token), idle_since],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((name, csrf, seen_at)) = row else { return Ok(None) };
    Ok(get_user(conn, &name)?.map(|user| Session { user, csrf, seen_at }))
}

/// Marks a session used now (callers do it at most every [`TOUCH_EVERY_MS`]).
pub fn touch(tx: &Transaction<'_>, token: &str) -> Result<(), AccountError> {
    let now = now_ms();
    tx.execute("UPDATE sessions SET seen_at = ?2 WHERE token_hash = ?1 AND seen_at < ?3", params![token_hash(token), now, now - TOUCH_EVERY_MS])?;
    Ok(())
}

pub fn logout(tx: &Transaction<'_>, token: &str) -> Result<(), AccountError> {
    tx.execute("DELETE FROM sessions WHERE token_hash = ?1", params![token_hash(token)])?;
    Ok(())
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub user: String,
    pub address: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Records who did what (in the caller's transaction, so the record and the change land
/// together).
pub fn audit(tx: &Transaction<'_>, user: &str, address: &str, action: &str, target: &str, detail: &str) -> Result<(), AccountError> {
    tx.execute(
        "INSERT INTO audit_log (at, user, address, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now_ms(), user, address, action, target, detail],
    )?;
    Ok(())
}

pub fn audit_log(conn: &Connection, limit: u64) -> Result<Vec<AuditEntry>, AccountError> {
    let mut stmt = conn.prepare("SELECT id, at, user, address, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok(AuditEntry { id: r.get(0)?, at: r.get(1)?, user: r.get(2)?, address: r.get(3)?, action: r.get(4)?, target: r.get(5)?, detail: r.get(6)? })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Failed-login counting: at most `PER_NAME` failures per (address, name) and `PER_ADDRESS` per
/// address within `WINDOW`; past that, logins from there wait until the window has passed.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<(IpAddr, String), Vec<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(15 * 60);
const PER_NAME: usize = 5;
const PER_ADDRESS: usize = 20;

impl LoginThrottle {
    /// `Err(Throttled)` if this address (for this name) must wait.
    pub fn check(&self, addr: IpAddr, name: &str) -> Result<(), AccountError> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        f.retain(|_, v| {
            v.retain(|t| now.duration_since(*t) < WINDOW);
            !v.is_empty()
        });
        let by_name = f.get(&(addr, name.to_string())).map_or(0, Vec::len);
        let by_addr: usize = f.iter().filter(|((a, _), _)| *a == addr).map(|(_, v)| v.len()).sum();
        if by_name >= PER_NAME || by_addr >= PER_ADDRESS {
            let oldest = f.iter().filter(|((a, _), _)| *a == addr).flat_map(|(_, v)| v.iter()).min().copied().unwrap_or(now);
            let wait = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
            return Err(AccountError::Throttled(wait));
        }
        Ok(())
    }

    pub fn failed(&self, addr: IpAddr, name: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.entry((addr, name.to_string())).or_default().push(Instant::now());
    }

    pub fn succeeded(&self, addr: IpAddr, name: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(&(addr, name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn users_log_in_with_argon2id_and_sessions_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("youke.db")).expect("store");
        let u = store.write(|tx| create_user(tx, "wangfang", "王芳", Role::Teacher, "correct horse")).expect("create");
        assert_eq!((u.role, u.display.as_str()), (Role::Teacher, "王芳"));
        let phc: String = store.read(|c| Ok::<_, AccountError>(c.query_row("SELECT password FROM users", [], |r| r.get(0))?)).expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(matches!(store.write(|tx| create_user(tx, "wangfang", "", Role::Viewer, "another one")), Err(AccountError::Exists(_))));
        assert!(matches!(store.write(|tx| create_user(tx, "bad name", "", Role::Viewer, "12345678")), Err(AccountError::Invalid(_))));
        assert!(matches!(store.write(|tx| create_user(tx, "short", "", Role::Viewer, "1234")), Err(AccountError::Invalid(_))));

        assert!(matches!(store.write(|tx| login(tx, "wangfang", "wrong password")), Err(AccountError::BadLogin)));
        assert!(matches!(store.write(|tx| login(tx, "nobody", "correct horse")), Err(AccountError::BadLogin)));
        let (token, s) = store.write(|tx| login(tx, "wangfang", "correct horse")).expect("login");
        assert_eq!(s.user.name, "wangfang");
        let found = store.read(|c| session(c, &token)).expect("session").expect("live");
        assert_eq!(found.csrf, s.csrf);
        assert_ne!(token, s.csrf);
        // The database holds only the token's hash.
        let stored: Vec<u8> = store.read(|c| Ok::<_, AccountError>(c.query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))?)).expect("row");
        assert_ne!(stored, token.as_bytes());
        assert!(store.read(|c| session(c, "not-a-token")).expect("read").is_none());
        // Disabling a user ends their sessions and refuses logins.
        store.write(|tx| update_user(tx, "wangfang", None, None, Some(true))).expect("disable");
        assert!(store.read(|c| session(c, &token)).expect("read").is_none());
        assert!(matches!(store.write(|tx| login(tx, "wangfang", "correct horse")), Err(AccountError::BadLogin)));
        store.write(|tx| update_user(tx, "wangfang", Some(Role::Admin), Some("new password!"), Some(false))).expect("update");
        let (token, s) = store.write(|tx| login(tx, "wangfang", "new password!")).expect("login");
        assert_eq!(s.user.role, Role::Admin);
        store.write(|tx| logout(tx, &token)).expect("logout");
        assert!(store.read(|c| session(c, &token)).expect("read").is_none());
    }

    #[test]
    fn failed_logins_are_throttled_per_address_and_name() {
        let t = LoginThrottle::default();
        let a: IpAddr = "10.0.0.7".parse().expect("ip");
        let b: IpAddr = "10.0.0.8".parse().expect("ip");
        for _ in 0..PER_NAME {
            t.check(a, "admin").expect("not yet");
            t.failed(a, "admin");
        }
        assert!(matches!(t.check(a, "admin"), Err(AccountError::Throttled(s)) if s > 0 && s <= WINDOW.as_secs()));
        t.check(b, "admin").expect("another address is not throttled");
        t.check(a, "teacher").expect("another name from the same address, under the address limit");
        t.succeeded(a, "admin");
        t.check(a, "admin").expect("a success clears the count");
    }
}
