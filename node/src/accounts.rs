//! Portal accounts: users with a role (their argon2id password hashes made and checked by
//! [`crate::passwords`]), sessions, the audit log, the sign-in throttle.
//!
//! A session is a random 256-bit token kept by the browser in an HttpOnly cookie; the database
//! holds only its BLAKE3 hash, so a copy of the database opens no session. Each session has its
//! own CSRF token, which every state-changing request made with the cookie must repeat in the
//! `X-CSRF-Token` header. Sign-in attempts are counted per (address, name) and per address from
//! the moment they begin ([`LoginThrottle`]) and answered with 429 past a limit.

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

/// The argon2id PHC string of a password ([`crate::passwords::hash`]).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    crate::passwords::hash(password).map_err(AccountError::Hash)
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

/// What a sign-in checks the password against: the stored hash (a dummy one for an unknown
/// name, so both cases take the same time) and whether the account may sign in at all.
pub fn password_of(conn: &Connection, name: &str) -> Result<(String, bool), AccountError> {
    let found: Option<(String, i64)> = conn.query_row("SELECT password, disabled FROM users WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    Ok(match found {
        Some((phc, disabled)) => (phc, disabled == 0),
        None => (crate::passwords::dummy_hash().to_string(), false),
    })
}

/// Opens a session for a user whose password was checked: (the cookie's token, the session).
pub fn open_session(tx: &Transaction<'_>, name: &str) -> Result<(String, Session), AccountError> {
    let user = get_user(tx, name)?.filter(|u| !u.disabled).ok_or(AccountError::BadLogin)?;
    let (token, csrf) = (random_token()?, random_token()?);
    let now = now_ms();
    tx.execute(
        "INSERT INTO sessions (token_hash, user, csrf, created_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![token_hash(&token), name, csrf, now],
    )?;
    Ok((token, Session { user, csrf, seen_at: now }))
}

/// Checks a password and opens a session in one transaction (commands and tests; the portal
/// checks passwords in [`crate::passwords::PasswordPool`], outside any transaction).
pub fn login(tx: &Transaction<'_>, name: &str, password: &str) -> Result<(String, Session), AccountError> {
    let (phc, may_sign_in) = password_of(tx, name)?;
    if !(crate::passwords::verify(password, &phc) && may_sign_in) {
        return Err(AccountError::BadLogin);
    }
    open_session(tx, name)
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

/// Sign-in attempts counted per (address, name) and per address: at most [`PER_NAME`] and
/// [`PER_ADDRESS`] within [`WINDOW`]; past that, sign-ins from there wait until the window has
/// passed. An attempt is counted when it begins, in the same step as the check of the limits
/// and before its password is checked, so however many attempts arrive at once no more than
/// the limits are ever checked. A success clears its (address, name); an attempt whose password
/// was never checked (the node was busy) is taken back.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    /// Per address, per name: when each attempt began.
    by_address: HashMap<IpAddr, HashMap<String, Vec<Instant>>>,
    last_sweep: Option<Instant>,
}

/// One sign-in attempt, counted until it is taken back.
#[derive(Debug)]
pub struct Attempt {
    addr: IpAddr,
    name: String,
    at: Instant,
}

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const PER_NAME: usize = 5;
pub const PER_ADDRESS: usize = 20;
/// Addresses tracked at most: beyond, new addresses are refused until old attempts expire
/// (the table cannot grow without bound under attacks from many addresses).
const MAX_ADDRESSES: usize = 100_000;

impl LoginThrottle {
    /// Counts an attempt by `name` from `addr`, or `Err(Throttled)` if one must wait.
    pub fn begin(&self, addr: IpAddr, name: &str) -> Result<Attempt, AccountError> {
        self.begin_at(addr, name, Instant::now())
    }

    fn begin_at(&self, addr: IpAddr, name: &str, now: Instant) -> Result<Attempt, AccountError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |v: &mut Vec<Instant>| {
            v.retain(|t| now.saturating_duration_since(*t) < WINDOW);
            !v.is_empty()
        };
        if st.last_sweep.is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(60)) {
            st.by_address.retain(|_, names| {
                names.retain(|_, v| fresh(v));
                !names.is_empty()
            });
            st.last_sweep = Some(now);
        }
        if !st.by_address.contains_key(&addr) && st.by_address.len() >= MAX_ADDRESSES {
            return Err(AccountError::Throttled(60));
        }
        let names = st.by_address.entry(addr).or_default();
        names.retain(|_, v| fresh(v));
        let by_name = names.get(name).map_or(0, Vec::len);
        let by_addr: usize = names.values().map(Vec::len).sum();
        if by_name >= PER_NAME || by_addr >= PER_ADDRESS {
            let oldest = if by_name >= PER_NAME { names.get(name).and_then(|v| v.iter().min()) } else { names.values().flatten().min() };
            let age = oldest.map_or(Duration::ZERO, |t| now.saturating_duration_since(*t));
            return Err(AccountError::Throttled(WINDOW.saturating_sub(age).as_secs().max(1)));
        }
        names.entry(name.to_string()).or_default().push(now);
        Ok(Attempt { addr, name: name.to_string(), at: now })
    }

    /// The attempt signed in: its (address, name) starts afresh.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(names) = st.by_address.get_mut(&attempt.addr) {
            names.remove(&attempt.name);
        }
    }

    /// The attempt's password was never checked: it does not count.
    pub fn take_back(&self, attempt: Attempt) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = st.by_address.get_mut(&attempt.addr).and_then(|names| names.get_mut(&attempt.name))
            && let Some(i) = v.iter().position(|t| *t == attempt.at)
        {
            v.swap_remove(i);
        }
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
    fn attempts_are_counted_before_their_password_is_checked() {
        let t = LoginThrottle::default();
        let a: IpAddr = "10.0.0.7".parse().expect("ip");
        let b: IpAddr = "10.0.0.8".parse().expect("ip");
        // Five attempts begun and none finished yet: the sixth is refused already.
        let open: Vec<Attempt> = (0..PER_NAME).map(|_| t.begin(a, "admin").expect("under the limit")).collect();
        assert!(matches!(t.begin(a, "admin"), Err(AccountError::Throttled(s)) if s > 0 && s <= WINDOW.as_secs()));
        let other = t.begin(b, "admin").expect("another address is not throttled");
        t.take_back(other);
        // A busy node takes an unchecked attempt back; a success clears the name.
        let mut open = open.into_iter();
        t.take_back(open.next().expect("one"));
        let again = t.begin(a, "admin").expect("one place free again");
        t.succeeded(again);
        t.begin(a, "admin").expect("a success clears the count");
        // The address as a whole: 20 attempts over many names, then nothing more.
        let t = LoginThrottle::default();
        for i in 0..PER_ADDRESS {
            t.begin(a, &format!("user{}", i / 4)).expect("under the address limit");
        }
        assert!(matches!(t.begin(a, "someone-else"), Err(AccountError::Throttled(_))));
        // Once the window has passed, the address may try again.
        let later = Instant::now() + WINDOW + Duration::from_secs(1);
        t.begin_at(a, "someone-else", later).expect("the window passed");
    }

    #[test]
    fn forty_attempts_at_once_check_no_more_than_the_limits() {
        let t = std::sync::Arc::new(LoginThrottle::default());
        let a: IpAddr = "10.0.0.9".parse().expect("ip");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let (t, barrier) = (std::sync::Arc::clone(&t), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    t.begin(a, "admin").is_ok()
                })
            })
            .collect();
        let let_through = threads.into_iter().map(|h| h.join().expect("thread")).filter(|ok| *ok).count();
        assert_eq!(let_through, PER_NAME);
    }
}
