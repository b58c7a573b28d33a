//! People and what they may see: users, teams, roles, API tokens, sign-in sessions, the
//! organisation's access setting, and [`Access`], the rule every scoped read and write applies.
//!
//! Secrets never reach the store in clear. Passwords are hashed with Argon2id (slow on
//! purpose: they are guessable); API tokens and session ids are 256 random bits, so a SHA-256
//! of them is enough and lets a request be authenticated with one hash-table lookup
//! ([`Directory`]).

use std::collections::HashMap;
use std::fmt;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::id::Id;

/// What a user may do. Ordered: each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads records and reports; changes nothing but their own password and tokens.
    Viewer,
    /// Works on records: creates and edits them, deletes only their own. Sees every record,
    /// or only their own and their team's, per [`OrgSettings::agent_scope`].
    Agent,
    /// Every record and report, no administration.
    Manager,
    /// Everything, including users, teams, plugins, custom fields, pipelines and the audit log.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Agent, Role::Manager, Role::Admin];

    /// The name used in the API and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// The role with this name.
    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("'{s}' is not a role; use viewer, agent, manager or admin"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Time-ordered id; records name their owner by it.
    pub id: Id,
    /// Sign-in name, unique case-insensitively.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Their team's key, if any.
    #[serde(default)]
    pub team: Option<String>,
    /// Inactive users cannot sign in and their tokens and sessions stop working; they stay so
    /// that the records and history that name them keep meaning something.
    pub active: bool,
    /// Argon2id hash in PHC string form; `None` until a password is set.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// When the user was created.
    pub created_at: Timestamp,
    /// When the user last changed.
    pub updated_at: Timestamp,
}

impl User {
    /// The user without the password hash, for answers and logs.
    pub fn public(&self) -> UserInfo {
        UserInfo {
            id: self.id,
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role,
            team: self.team.clone(),
            active: self.active,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A user as the API shows it: everything but the password hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserInfo {
    /// Id.
    pub id: Id,
    /// Sign-in email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Team key.
    pub team: Option<String>,
    /// Whether they can sign in.
    pub active: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A new user, as an admin or the command line describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    /// Sign-in email.
    pub email: String,
    /// Display name; the email's local part when empty.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Team key (must exist).
    pub team: Option<String>,
    /// Argon2id hash from [`hash_password`], made outside the writer because it is slow.
    pub password_hash: Option<String>,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    /// New email.
    pub email: Option<String>,
    /// New display name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// New team: `Some(None)` removes them from their team.
    pub team: Option<Option<String>>,
    /// Activate or deactivate. Deactivating ends their sessions and stops their tokens.
    pub active: Option<bool>,
    /// A new password hash. Ends every session of the user but `keep_session`.
    pub password_hash: Option<String>,
    /// The session (by hash) to keep when the password changes: the one changing it.
    pub keep_session: Option<String>,
}

/// A team: agents limited to their own and their team's records see what it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Short key records store (`[a-z0-9-]`, at most 64).
    pub key: String,
    /// Display name.
    pub name: String,
}

impl Team {
    /// Checks the key and name.
    pub fn check(&self) -> Result<(), Error> {
        check_key(&self.key)?;
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        Ok(())
    }
}

/// Checks a team key: 1 to 64 of lower-case letters, digits and hyphens.
pub fn check_key(key: &str) -> Result<(), Error> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "key",
            format!("'{key}' must be 1 to 64 lower-case letters, digits or hyphens"),
        ))
    }
}

/// An API token. The secret itself is shown once, at creation, and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// Id (what revocation names).
    pub id: Id,
    /// The user the token acts as.
    pub user: Id,
    /// What it is for, as its creator described it.
    pub name: String,
    /// SHA-256 (hex) of the secret.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub hash: String,
    /// Created.
    pub created_at: Timestamp,
    /// After this it is refused.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked; refused from then on.
    pub revoked_at: Option<Timestamp>,
}

impl Token {
    /// Why the token cannot be used at `now`, if it cannot.
    pub fn refusal(&self, now: Timestamp) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("this API token was revoked")
        } else if self.expires_at.is_some_and(|e| e <= now) {
            Some("this API token has expired")
        } else {
            None
        }
    }

    /// The token without its hash, for answers.
    pub fn public(&self) -> Token {
        Token {
            hash: String::new(),
            ..self.clone()
        }
    }
}

/// A signed-in browser session. The cookie holds the secret; the store holds its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// SHA-256 (hex) of the cookie's secret.
    pub hash: String,
    /// Who signed in.
    pub user: Id,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Whether agents see every record or only their own and their team's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentScope {
    /// Agents see every record.
    #[default]
    All,
    /// Agents see the records they own and those of their team.
    OwnAndTeam,
}

/// Organisation-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettings {
    /// What agents see.
    #[serde(default)]
    pub agent_scope: AgentScope,
}

/// Which records a caller may see and change: the rule scoped reads and writes apply.
///
/// A record is visible when the caller sees everything, owns it, or shares its team.
/// Interactions and tasks take the team of the record they are linked to when created, so
/// the same rule covers a customer's whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The caller's user id as records store it in `owner`; `None` for the system.
    pub user: Option<String>,
    /// The caller's team key.
    pub team: Option<String>,
    /// Whether every record is visible.
    pub sees_all: bool,
    /// Whether the caller may change records at all.
    pub may_write: bool,
    /// Whether the caller may delete records they do not own.
    pub may_delete_others: bool,
}

impl Access {
    /// No restriction: the system, demo data, plugins (which have their own grants).
    pub fn everything() -> Access {
        Access {
            user: None,
            team: None,
            sees_all: true,
            may_write: true,
            may_delete_others: true,
        }
    }

    /// What `user` may do under `settings`.
    pub fn for_user(user: &User, settings: &OrgSettings) -> Access {
        let restricted = user.role == Role::Agent && settings.agent_scope == AgentScope::OwnAndTeam;
        Access {
            user: Some(user.id.to_string()),
            team: user.team.clone(),
            sees_all: !restricted,
            may_write: user.role >= Role::Agent,
            may_delete_others: user.role >= Role::Manager,
        }
    }

    /// Whether a record with this owner and team is visible.
    pub fn sees(&self, owner: Option<&str>, team: Option<&str>) -> bool {
        self.sees_all
            || (owner.is_some() && owner == self.user.as_deref())
            || (team.is_some() && team == self.team.as_deref())
    }

    /// Whether the caller owns a record with this owner.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        owner.is_some() && owner == self.user.as_deref()
    }
}

/// The fewest characters a password may have.
pub const MIN_PASSWORD: usize = 10;

/// Hashes a password with Argon2id (default parameters, random salt). Slow on purpose: call
/// it off any async executor.
pub fn hash_password(password: &str) -> Result<String, Error> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::invalid("password", format!("cannot be hashed: {e}")))
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(Error::invalid(
            "password",
            format!("must have at least {MIN_PASSWORD} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(Error::invalid("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

/// Whether `password` matches a stored Argon2id hash. Slow on purpose.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash that no password matches, verified against when the email is unknown so that a
/// failed sign-in takes as long whether or not the account exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(b"no password is this one", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A new secret: 256 random bits, base64url, with a prefix saying what it is (`kith_` for
/// API tokens, so leaked tokens are easy to search for).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The SHA-256 (hex) a token or session secret is stored and looked up as.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The CSRF token of a session: derived from its secret, so forms can carry it and nobody
/// without the cookie can compute it.
pub fn csrf_token(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"kith-csrf\0");
    h.update(session_secret.as_bytes());
    hex(&h.finalize())
}

/// Compares two strings in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Lower-case hex. Every authenticated request hashes its token or cookie and looks the hex
/// up, so this avoids a `fmt` call per byte.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Everything about accounts, held in memory so a request is authenticated without touching
/// the database. The store rebuilds it after every commit that changed accounts
/// ([`crate::Store::directory`]).
#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<Id, User>,
    by_email: HashMap<String, Id>,
    tokens: HashMap<String, Token>,
    sessions: HashMap<String, Session>,
    teams: Vec<Team>,
    settings: OrgSettings,
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Nothing matches the token or session.
    #[error("unknown credentials")]
    Unknown,
    /// The token was revoked or expired, or the session expired.
    #[error("{0}")]
    Ended(&'static str),
    /// The user was deactivated.
    #[error("this account is deactivated")]
    Inactive,
}

impl Directory {
    pub(crate) fn new(
        users: Vec<User>,
        tokens: Vec<Token>,
        sessions: Vec<Session>,
        teams: Vec<Team>,
        settings: OrgSettings,
    ) -> Directory {
        Directory {
            by_email: users
                .iter()
                .map(|u| (u.email.to_lowercase(), u.id))
                .collect(),
            users: users.into_iter().map(|u| (u.id, u)).collect(),
            tokens: tokens.into_iter().map(|t| (t.hash.clone(), t)).collect(),
            sessions: sessions.into_iter().map(|s| (s.hash.clone(), s)).collect(),
            teams,
            settings,
        }
    }

    /// The user an API token acts as, with the token.
    pub fn by_token(&self, secret: &str, now: Timestamp) -> Result<(&User, &Token), Refusal> {
        let token = self
            .tokens
            .get(&hash_secret(secret))
            .ok_or(Refusal::Unknown)?;
        if let Some(why) = token.refusal(now) {
            return Err(Refusal::Ended(why));
        }
        Ok((self.active_user(token.user)?, token))
    }

    /// The user a session cookie belongs to, with the session.
    pub fn by_session(&self, secret: &str, now: Timestamp) -> Result<(&User, &Session), Refusal> {
        let session = self
            .sessions
            .get(&hash_secret(secret))
            .ok_or(Refusal::Unknown)?;
        if session.expires_at <= now {
            return Err(Refusal::Ended("this session has expired; sign in again"));
        }
        Ok((self.active_user(session.user)?, session))
    }

    fn active_user(&self, id: Id) -> Result<&User, Refusal> {
        let user = self.users.get(&id).ok_or(Refusal::Unknown)?;
        if user.active {
            Ok(user)
        } else {
            Err(Refusal::Inactive)
        }
    }

    /// A user by id.
    pub fn user(&self, id: Id) -> Option<&User> {
        self.users.get(&id)
    }

    /// A user by email, case-insensitively.
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.by_email
            .get(&email.trim().to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    /// A user named by id or by email, as people and scripts name them.
    pub fn find_user(&self, id_or_email: &str) -> Option<&User> {
        match id_or_email.trim().parse::<Id>() {
            Ok(id) => self.user(id),
            Err(_) => self.user_by_email(id_or_email),
        }
    }

    /// Every user, oldest first.
    pub fn users(&self) -> Vec<&User> {
        let mut all: Vec<&User> = self.users.values().collect();
        all.sort_by_key(|u| u.id);
        all
    }

    /// A user's tokens (every user's with `None`), oldest first, hashes removed.
    pub fn tokens(&self, user: Option<Id>) -> Vec<Token> {
        let mut all: Vec<Token> = self
            .tokens
            .values()
            .filter(|t| user.is_none_or(|u| t.user == u))
            .map(Token::public)
            .collect();
        all.sort_by_key(|t| t.id);
        all
    }

    /// One token by id, hash removed.
    pub fn token(&self, id: Id) -> Option<Token> {
        self.tokens.values().find(|t| t.id == id).map(Token::public)
    }

    /// The teams, by key.
    pub fn teams(&self) -> &[Team] {
        &self.teams
    }

    /// The organisation's settings.
    pub fn settings(&self) -> &OrgSettings {
        &self.settings
    }

    /// What `user` may see and do now.
    pub fn access(&self, user: &User) -> Access {
        Access::for_user(user, &self.settings)
    }

    /// Whether there is no user at all (a first start).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored tokens and sessions are found by this hash, so it must never change.
    #[test]
    fn secrets_hash_to_the_same_hex_as_ever() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), expected);
    }

    fn user(role: Role, team: Option<&str>) -> User {
        User {
            id: Id::from_u128(7),
            email: "a@example.com".into(),
            name: "A".into(),
            role,
            team: team.map(str::to_owned),
            active: true,
            password_hash: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn agents_limited_by_the_org_setting() {
        let own = OrgSettings {
            agent_scope: AgentScope::OwnAndTeam,
        };
        let me = Id::from_u128(7).to_string();
        let a = Access::for_user(&user(Role::Agent, Some("east")), &own);
        assert!(a.sees(Some(&me), None));
        assert!(a.sees(Some("someone"), Some("east")));
        assert!(!a.sees(Some("someone"), Some("west")));
        assert!(!a.sees(None, None));
        assert!(!a.may_delete_others && a.may_write);
        let all = Access::for_user(&user(Role::Agent, None), &OrgSettings::default());
        assert!(all.sees(None, None));
        let m = Access::for_user(&user(Role::Manager, None), &own);
        assert!(m.sees(None, None) && m.may_delete_others);
        let v = Access::for_user(&user(Role::Viewer, None), &own);
        assert!(v.sees(None, None) && !v.may_write);
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("anything", decoy_hash()));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = new_secret("kith_");
        let b = new_secret("kith_");
        assert_ne!(a, b);
        assert!(a.starts_with("kith_") && a.len() == 5 + 43);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(csrf_token(&a), hash_secret(&a));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }

    #[test]
    fn roles_parse_and_order() {
        assert_eq!(Role::parse("Admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
        assert!(Role::Viewer < Role::Agent && Role::Manager < Role::Admin);
    }
}
