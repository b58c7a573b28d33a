//! Unit tests of accounts in the store: users, teams, tokens, sessions and settings, the
//! in-memory directory, record owners and teams, and scoped writes and reads.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Duration;

use super::{Command, Input, NewToken, Outcome, Store, StoreConfig};
use crate::account::{
    self, Access, AgentScope, NewUser, OrgSettings, Refusal, Role, Session, Team, Token, User,
    UserChanges,
};
use crate::clock::{Clock, ManualClock, Timestamp};
use crate::entity::{AnyRecord, EntityKind};
use crate::error::Error;
use crate::id::Id;
use crate::query::{Filter, FilterOp, Query, SortKey};
use crate::value::Value;

// ---------------------------------------------------------------------------------------------
// Fixture and helpers
// ---------------------------------------------------------------------------------------------

/// A store in a fresh directory with a stopped clock. The store is declared first so it
/// closes before the directory is removed.
struct Fixture {
    store: Store,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn t0() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    Store::open(StoreConfig {
        clock: clock.clone(),
        ..StoreConfig::new(dir)
    })
    .unwrap()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let store = open(dir.path(), &clock);
        Fixture { store, clock, dir }
    }

    /// Closes the store and opens the same file again.
    fn reopen(&mut self) {
        self.store.close();
        self.store = open(self.dir.path(), &self.clock);
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs a command a millisecond after the previous one, so ids and times are ordered.
    fn exec(&self, cmd: Command) -> Result<Outcome, Error> {
        self.clock.advance(Duration::milliseconds(1));
        self.store.execute(cmd, "test")
    }

    fn team(&self, key: &str, name: &str) -> Team {
        match self
            .exec(Command::PutTeam(Team {
                key: key.to_owned(),
                name: name.to_owned(),
            }))
            .unwrap()
        {
            Outcome::Team(t) => t,
            other => panic!("{other:?}"),
        }
    }

    fn try_user(&self, new: NewUser) -> Result<User, Error> {
        self.exec(Command::CreateUser(new)).map(|o| match o {
            Outcome::User(u) => u,
            other => panic!("{other:?}"),
        })
    }

    fn user(&self, email: &str, role: Role, team: Option<&str>) -> User {
        self.try_user(new_user(email, role, team)).unwrap()
    }

    fn update_user(&self, id: Id, changes: UserChanges) -> Result<User, Error> {
        self.exec(Command::UpdateUser { id, changes })
            .map(|o| match o {
                Outcome::User(u) => u,
                other => panic!("{other:?}"),
            })
    }

    /// A new API token for `user`: its secret and the token as stored.
    fn token(&self, user: Id, expires_at: Option<Timestamp>) -> (String, Token) {
        let secret = account::new_secret("kith_");
        let out = self
            .exec(Command::CreateToken(NewToken {
                user,
                name: "ci".to_owned(),
                hash: account::hash_secret(&secret),
                expires_at,
            }))
            .unwrap();
        match out {
            Outcome::Token(t) => (secret, t),
            other => panic!("{other:?}"),
        }
    }

    /// A new session for `user` lasting `hours`: its secret.
    fn session(&self, user: Id, hours: i64) -> String {
        let secret = account::new_secret("");
        self.exec(Command::StartSession(Session {
            hash: account::hash_secret(&secret),
            user,
            created_at: self.now(),
            expires_at: self.now() + Duration::hours(hours),
        }))
        .unwrap();
        secret
    }

    fn session_works(&self, secret: &str) -> Result<Id, Refusal> {
        self.store
            .directory()
            .by_session(secret, self.now())
            .map(|(u, _)| u.id)
    }

    fn token_works(&self, secret: &str) -> Result<Id, Refusal> {
        self.store
            .directory()
            .by_token(secret, self.now())
            .map(|(u, _)| u.id)
    }

    fn try_create(&self, kind: EntityKind, input: Input) -> Result<AnyRecord, Error> {
        self.exec(Command::Create { kind, input }).map(record)
    }

    fn create(&self, kind: EntityKind, input: Input) -> AnyRecord {
        self.try_create(kind, input).unwrap()
    }

    fn try_update(&self, kind: EntityKind, id: Id, input: Input) -> Result<AnyRecord, Error> {
        self.exec(Command::Update { kind, id, input }).map(record)
    }

    /// A contact with this first name, owned by `owner` (id or email) when given.
    fn contact(&self, name: &str, owner: Option<&str>) -> AnyRecord {
        let mut input = Input::with([("first_name", text(name))]);
        if let Some(o) = owner {
            input.fields.insert("owner".to_owned(), text(o));
        }
        self.create(EntityKind::Contact, input)
    }

    fn scoped(&self, access: &Access, cmd: Command) -> Result<Outcome, Error> {
        self.exec(Command::Scoped {
            access: access.clone(),
            command: Box::new(cmd),
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.store.close();
    }
}

fn new_user(email: &str, role: Role, team: Option<&str>) -> NewUser {
    NewUser {
        email: email.to_owned(),
        name: String::new(),
        role,
        team: team.map(str::to_owned),
        password_hash: None,
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn record(o: Outcome) -> AnyRecord {
    match o {
        Outcome::Record(r) => r,
        other => panic!("{other:?}"),
    }
}

fn owner(r: &AnyRecord) -> Option<String> {
    match r.get("owner") {
        Some(Value::Text(s)) => Some(s),
        Some(Value::Null) | None => None,
        other => panic!("owner is {other:?}"),
    }
}

fn team(r: &AnyRecord) -> Option<String> {
    match r.get("team") {
        Some(Value::Text(s)) => Some(s),
        Some(Value::Null) | None => None,
        other => panic!("team is {other:?}"),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn sid(u: &User) -> Option<String> {
    Some(u.id.to_string())
}

/// The field an `Invalid` error names; panics on any other error.
fn invalid_field(e: &Error) -> &str {
    match e {
        Error::Invalid(f) => &f.field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The field a `Conflict` error names; panics on any other error.
fn conflict_field(e: &Error) -> &str {
    match e {
        Error::Conflict { field, .. } => field,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, Error>, want: Id) {
    match r {
        Err(Error::NotFound { id, .. }) => assert_eq!(id, want),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn assert_forbidden<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::Forbidden(_)) => {}
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

fn own_and_team() -> OrgSettings {
    OrgSettings {
        agent_scope: AgentScope::OwnAndTeam,
    }
}

fn ids(items: &[AnyRecord]) -> Vec<Id> {
    let mut v: Vec<Id> = items.iter().map(AnyRecord::id).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<Id>) -> Vec<Id> {
    v.sort();
    v
}

fn q() -> Query {
    Query::default()
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

#[test]
fn create_user_normalizes_email_and_defaults_the_name() {
    let f = Fixture::new();
    let ada = f.user("  Ada.Lovelace@Example.COM ", Role::Admin, None);
    assert_eq!(ada.email, "Ada.Lovelace@example.com");
    assert_eq!(
        ada.name, "Ada.Lovelace",
        "an empty name is the email's local part"
    );
    assert!(ada.active);
    assert_eq!(ada.role, Role::Admin);
    assert_eq!(ada.team, None);
    assert_eq!(ada.created_at, f.now());
    assert_eq!(ada.updated_at, f.now());

    let mut named = new_user("bob@example.com", Role::Agent, None);
    named.name = "  Bob Builder  ".to_owned();
    let bob = f.try_user(named).unwrap();
    assert_eq!(bob.name, "Bob Builder");

    let mut blank = new_user("carol@example.com", Role::Agent, None);
    blank.name = "   ".to_owned();
    assert_eq!(f.try_user(blank).unwrap().name, "carol");

    let mut long = new_user("dan@example.com", Role::Agent, None);
    long.name = "x".repeat(201);
    assert_eq!(invalid_field(&f.try_user(long).unwrap_err()), "name");

    // The directory finds users by email case-insensitively, and by id.
    let d = f.store.directory();
    assert_eq!(
        d.user_by_email("ADA.LOVELACE@example.com").map(|u| u.id),
        Some(ada.id)
    );
    assert_eq!(d.user(bob.id).map(|u| u.name.as_str()), Some("Bob Builder"));
    assert_eq!(d.users().len(), 3);
    assert!(d.user_by_email("dan@example.com").is_none());
    assert!(!d.is_empty());
}

#[test]
fn a_new_store_has_an_empty_directory() {
    let f = Fixture::new();
    let d = f.store.directory();
    assert!(d.is_empty());
    assert!(d.teams().is_empty());
    assert_eq!(d.settings(), &OrgSettings::default());
    assert_eq!(f.token_works("kith_nothing"), Err(Refusal::Unknown));
    assert_eq!(f.session_works("nothing"), Err(Refusal::Unknown));
}

#[test]
fn duplicate_email_is_a_conflict_case_insensitively() {
    let f = Fixture::new();
    let ada = f.user("ada@example.com", Role::Admin, None);
    let e = f
        .try_user(new_user("ADA@Example.com", Role::Agent, None))
        .unwrap_err();
    assert_eq!(conflict_field(&e), "email");
    let e = f
        .try_user(new_user(" ada@EXAMPLE.COM ", Role::Agent, None))
        .unwrap_err();
    assert_eq!(conflict_field(&e), "email");
    let d = f.store.directory();
    assert_eq!(d.users().len(), 1);
    assert_eq!(d.users()[0].id, ada.id);
    assert_eq!(d.users()[0].role, Role::Admin);
}

#[test]
fn duplicate_emails_in_one_batch_conflict() {
    let f = Fixture::new();
    let results = f.store.execute_all(
        vec![
            Command::CreateUser(new_user("ada@example.com", Role::Admin, None)),
            Command::CreateUser(new_user("Ada@Example.com", Role::Agent, None)),
        ],
        "test",
    );
    assert!(matches!(results[0], Ok(Outcome::User(_))), "{results:?}");
    match &results[1] {
        Err(e) => assert_eq!(conflict_field(e), "email"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.store.directory().users().len(), 1);
}

#[test]
fn invalid_email_is_refused() {
    let f = Fixture::new();
    for bad in ["", "ada", "ada@", "@example.com", "a da@example.com"] {
        let e = f.try_user(new_user(bad, Role::Agent, None)).unwrap_err();
        assert_eq!(invalid_field(&e), "email", "{bad:?}");
    }
    assert!(f.store.directory().is_empty());
}

#[test]
fn a_user_team_must_exist() {
    let f = Fixture::new();
    let e = f
        .try_user(new_user("ada@example.com", Role::Agent, Some("east")))
        .unwrap_err();
    assert_eq!(invalid_field(&e), "team");
    assert!(f.store.directory().is_empty());

    f.team("east", "East");
    let ada = f.user("ada@example.com", Role::Agent, Some(" east "));
    assert_eq!(ada.team.as_deref(), Some("east"));
    // A blank team is no team.
    let bob = f.user("bob@example.com", Role::Agent, Some("  "));
    assert_eq!(bob.team, None);
}

#[test]
fn changing_an_email_frees_the_old_one() {
    let f = Fixture::new();
    let ada = f.user("ada@example.com", Role::Admin, None);
    let bob = f.user("bob@example.com", Role::Agent, None);

    // Another user's email, in any case, is taken.
    let e = f
        .update_user(
            bob.id,
            UserChanges {
                email: s("ADA@example.com"),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(conflict_field(&e), "email");

    // Their own email (in another case) is not.
    let ada2 = f
        .update_user(
            ada.id,
            UserChanges {
                email: s("Ada@Example.com"),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert_eq!(ada2.email, "Ada@example.com");

    let ada3 = f
        .update_user(
            ada.id,
            UserChanges {
                email: s("countess@example.com"),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert_eq!(ada3.email, "countess@example.com");
    assert!(ada3.updated_at > ada.updated_at);
    let d = f.store.directory();
    assert!(d.user_by_email("ada@example.com").is_none());
    assert_eq!(
        d.user_by_email("countess@example.com").map(|u| u.id),
        Some(ada.id)
    );

    // The old email is free for someone else now, and the new one is taken.
    let carol = f.user("ada@example.com", Role::Agent, None);
    assert_ne!(carol.id, ada.id);
    let e = f
        .update_user(
            bob.id,
            UserChanges {
                email: s("Countess@example.com"),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(conflict_field(&e), "email");
    let d = f.store.directory();
    assert_eq!(
        d.user_by_email("ada@example.com").map(|u| u.id),
        Some(carol.id)
    );
    assert_eq!(d.users().len(), 3);
}

#[test]
fn update_user_changes_fields_and_validates_them() {
    let f = Fixture::new();
    f.team("east", "East");
    f.team("west", "West");
    f.user("root@example.com", Role::Admin, None);
    let bob = f.user("bob@example.com", Role::Agent, Some("east"));

    let b = f
        .update_user(
            bob.id,
            UserChanges {
                name: s("  Robert  "),
                role: Some(Role::Manager),
                team: Some(s("west")),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert_eq!(b.name, "Robert");
    assert_eq!(b.role, Role::Manager);
    assert_eq!(b.team.as_deref(), Some("west"));
    assert_eq!(b.email, "bob@example.com", "fields not named stay");
    assert_eq!(f.store.directory().user(bob.id), Some(&b));

    for bad in ["", "   "] {
        let e = f
            .update_user(
                bob.id,
                UserChanges {
                    name: s(bad),
                    ..UserChanges::default()
                },
            )
            .unwrap_err();
        assert_eq!(invalid_field(&e), "name");
    }
    let e = f
        .update_user(
            bob.id,
            UserChanges {
                team: Some(s("nope")),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "team");
    let e = f
        .update_user(
            bob.id,
            UserChanges {
                email: s("not an email"),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "email");
    // A failed update changes nothing, not even the fields that were fine.
    let e = f
        .update_user(
            bob.id,
            UserChanges {
                name: s("Bobby"),
                team: Some(s("nope")),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "team");
    assert_eq!(f.store.directory().user(bob.id), Some(&b));

    // `Some(None)` takes them out of their team.
    let b = f
        .update_user(
            bob.id,
            UserChanges {
                team: Some(None),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert_eq!(b.team, None);

    let ghost = Id::from_u128(42);
    match f.update_user(ghost, UserChanges::default()) {
        Err(Error::NoSuch { what: "user", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_last_active_admin_cannot_be_demoted_or_deactivated() {
    let f = Fixture::new();
    let root = f.user("root@example.com", Role::Admin, None);
    f.user("agent@example.com", Role::Agent, None);

    let e = f
        .update_user(
            root.id,
            UserChanges {
                role: Some(Role::Manager),
                name: s("Demoted"),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(conflict_field(&e), "role");
    let e = f
        .update_user(
            root.id,
            UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(conflict_field(&e), "active");
    let u = f.store.directory().user(root.id).cloned().unwrap();
    assert_eq!(
        (u.role, u.active, u.name.as_str()),
        (Role::Admin, true, "root")
    );

    // Other changes to the last admin are fine.
    f.update_user(
        root.id,
        UserChanges {
            name: s("Root"),
            role: Some(Role::Admin),
            active: Some(true),
            ..UserChanges::default()
        },
    )
    .unwrap();

    // With a second admin the first may step down; then the second is the last one.
    let second = f.user("second@example.com", Role::Admin, None);
    let u = f
        .update_user(
            root.id,
            UserChanges {
                role: Some(Role::Viewer),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert_eq!(u.role, Role::Viewer);
    let e = f
        .update_user(
            second.id,
            UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(conflict_field(&e), "active");

    // An inactive admin does not count as another admin.
    let third = f.user("third@example.com", Role::Admin, None);
    f.update_user(
        third.id,
        UserChanges {
            active: Some(false),
            ..UserChanges::default()
        },
    )
    .unwrap();
    let e = f
        .update_user(
            second.id,
            UserChanges {
                role: Some(Role::Agent),
                ..UserChanges::default()
            },
        )
        .unwrap_err();
    assert_eq!(conflict_field(&e), "role");
}

#[test]
fn two_admins_demoted_in_one_batch_leave_one_admin() {
    let f = Fixture::new();
    let a = f.user("a@example.com", Role::Admin, None);
    let b = f.user("b@example.com", Role::Admin, None);
    let demote = |id| Command::UpdateUser {
        id,
        changes: UserChanges {
            role: Some(Role::Agent),
            ..UserChanges::default()
        },
    };
    let results = f
        .store
        .execute_all(vec![demote(a.id), demote(b.id)], "test");
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    let admins = f
        .store
        .directory()
        .users()
        .iter()
        .filter(|u| u.role == Role::Admin && u.active)
        .count();
    assert_eq!(admins, 1);
}

#[test]
fn deactivation_ends_sessions_and_stops_tokens() {
    let f = Fixture::new();
    f.user("root@example.com", Role::Admin, None);
    let bob = f.user("bob@example.com", Role::Agent, None);
    let carol = f.user("carol@example.com", Role::Agent, None);
    let s1 = f.session(bob.id, 8);
    let s2 = f.session(bob.id, 8);
    let other = f.session(carol.id, 8);
    let (tok, _) = f.token(bob.id, None);
    assert_eq!(f.session_works(&s1), Ok(bob.id));
    assert_eq!(f.token_works(&tok), Ok(bob.id));

    let u = f
        .update_user(
            bob.id,
            UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert!(!u.active);
    // Sessions are gone from the store; the token stays but is refused.
    assert_eq!(f.session_works(&s1), Err(Refusal::Unknown));
    assert_eq!(f.session_works(&s2), Err(Refusal::Unknown));
    assert_eq!(f.token_works(&tok), Err(Refusal::Inactive));
    assert_eq!(f.session_works(&other), Ok(carol.id));
    // The token is still listed (with no hash).
    let listed = f.store.directory().tokens(Some(bob.id));
    assert_eq!(listed.len(), 1);
    assert!(listed[0].hash.is_empty());

    // A deactivated user gets no new session or token.
    let secret = account::new_secret("");
    let e = f
        .exec(Command::StartSession(Session {
            hash: account::hash_secret(&secret),
            user: bob.id,
            created_at: f.now(),
            expires_at: f.now() + Duration::hours(1),
        }))
        .unwrap_err();
    assert_eq!(invalid_field(&e), "user");
    let e = f
        .exec(Command::CreateToken(NewToken {
            user: bob.id,
            name: "x".to_owned(),
            hash: account::hash_secret("kith_x"),
            expires_at: None,
        }))
        .unwrap_err();
    assert_eq!(invalid_field(&e), "user");
    assert_eq!(f.session_works(&secret), Err(Refusal::Unknown));
    assert_eq!(f.token_works("kith_x"), Err(Refusal::Unknown));

    // Reactivated, the (unrevoked) token works again; the ended sessions do not come back.
    f.update_user(
        bob.id,
        UserChanges {
            active: Some(true),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert_eq!(f.token_works(&tok), Ok(bob.id));
    assert_eq!(f.session_works(&s1), Err(Refusal::Unknown));
}

#[test]
fn a_password_change_ends_every_session_but_the_kept_one() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let carol = f.user("carol@example.com", Role::Agent, None);
    let s1 = f.session(bob.id, 8);
    let s2 = f.session(bob.id, 8);
    let s3 = f.session(bob.id, 8);
    let other = f.session(carol.id, 8);
    let (tok, _) = f.token(bob.id, None);

    // Changes other than password and activity leave sessions alone.
    f.update_user(
        bob.id,
        UserChanges {
            name: s("Bobby"),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert_eq!(f.session_works(&s1), Ok(bob.id));

    let u = f
        .update_user(
            bob.id,
            UserChanges {
                password_hash: s("$argon2id$fake-1"),
                keep_session: Some(account::hash_secret(&s2)),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$fake-1"));
    assert_eq!(f.session_works(&s1), Err(Refusal::Unknown));
    assert_eq!(f.session_works(&s2), Ok(bob.id));
    assert_eq!(f.session_works(&s3), Err(Refusal::Unknown));
    assert_eq!(f.session_works(&other), Ok(carol.id));
    assert_eq!(
        f.token_works(&tok),
        Ok(bob.id),
        "tokens survive a password change"
    );
    assert_eq!(
        f.store
            .directory()
            .user(bob.id)
            .and_then(|u| u.password_hash.clone())
            .as_deref(),
        Some("$argon2id$fake-1")
    );

    // Without a session to keep, all of them end.
    f.update_user(
        bob.id,
        UserChanges {
            password_hash: s("$argon2id$fake-2"),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert_eq!(f.session_works(&s2), Err(Refusal::Unknown));
    assert_eq!(f.session_works(&other), Ok(carol.id));
}

// ---------------------------------------------------------------------------------------------
// Directory: tokens, sessions, settings
// ---------------------------------------------------------------------------------------------

#[test]
fn a_token_works_as_soon_as_execute_returns() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let (secret, token) = f.token(bob.id, None);
    assert_eq!(
        token.hash,
        account::hash_secret(&secret),
        "the outcome carries the hash"
    );
    assert_eq!(token.user, bob.id);
    assert_eq!(token.name, "ci");
    assert_eq!(token.created_at, f.now());
    assert_eq!(token.revoked_at, None);

    let d = f.store.directory();
    let (u, t) = d.by_token(&secret, f.now()).unwrap();
    assert_eq!(u.id, bob.id);
    assert_eq!(t.id, token.id);
    assert_eq!(
        d.by_token("kith_unknown", f.now()).unwrap_err(),
        Refusal::Unknown
    );
    assert_eq!(
        d.by_token(&token.hash, f.now()).unwrap_err(),
        Refusal::Unknown,
        "the hash itself is no credential"
    );
    // Listings never carry hashes.
    let listed = d.tokens(None);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, token.id);
    assert!(listed[0].hash.is_empty());
    assert!(d.token(token.id).unwrap().hash.is_empty());
    assert!(d.tokens(Some(Id::from_u128(1))).is_empty());
    assert!(d.token(Id::from_u128(1)).is_none());

    // Many tokens made in one batch are all usable when the batch returns.
    let secrets: Vec<String> = (0..5).map(|_| account::new_secret("kith_")).collect();
    let cmds = secrets
        .iter()
        .map(|s| {
            Command::CreateToken(NewToken {
                user: bob.id,
                name: "batch".to_owned(),
                hash: account::hash_secret(s),
                expires_at: None,
            })
        })
        .collect();
    for r in f.store.execute_all(cmds, "test") {
        r.unwrap();
    }
    for s in &secrets {
        assert_eq!(f.token_works(s), Ok(bob.id));
    }
}

#[test]
fn create_token_validates_its_input() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let mk = |user, name: &str, hash: String, expires_at| {
        Command::CreateToken(NewToken {
            user,
            name: name.to_owned(),
            hash,
            expires_at,
        })
    };
    let good = account::hash_secret("kith_a");
    match f.exec(mk(Id::from_u128(9), "ci", good.clone(), None)) {
        Err(Error::NoSuch { what: "user", .. }) => {}
        other => panic!("{other:?}"),
    }
    let e = f.exec(mk(bob.id, "  ", good.clone(), None)).unwrap_err();
    assert_eq!(invalid_field(&e), "name");
    let e = f
        .exec(mk(bob.id, "ci", "kith_a".to_owned(), None))
        .unwrap_err();
    assert_eq!(invalid_field(&e), "hash");
    let past = f.now();
    let e = f
        .exec(mk(bob.id, "ci", good.clone(), Some(past)))
        .unwrap_err();
    assert_eq!(invalid_field(&e), "expires_at");
    assert!(f.store.directory().tokens(None).is_empty());
    assert_eq!(f.token_works("kith_a"), Err(Refusal::Unknown));
}

#[test]
fn a_revoked_token_is_refused() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let (secret, token) = f.token(bob.id, None);
    let (keep, _) = f.token(bob.id, None);
    let revoked = match f.exec(Command::RevokeToken { id: token.id }).unwrap() {
        Outcome::Token(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(revoked.revoked_at, Some(f.now()));
    assert!(
        revoked.hash.is_empty(),
        "the revocation's answer carries no hash"
    );
    let when = f.now();
    assert!(matches!(f.token_works(&secret), Err(Refusal::Ended(_))));
    assert_eq!(
        f.token_works(&keep),
        Ok(bob.id),
        "only that token is revoked"
    );

    // Revoking again keeps the first revocation time.
    match f.exec(Command::RevokeToken { id: token.id }).unwrap() {
        Outcome::Token(t) => assert_eq!(t.revoked_at, Some(when)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.store.directory().token(token.id).unwrap().revoked_at,
        Some(when)
    );
    match f.exec(Command::RevokeToken {
        id: Id::from_u128(5),
    }) {
        Err(Error::NoSuch { what: "token", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_token_is_refused() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let expires = f.now() + Duration::hours(1);
    let (secret, token) = f.token(bob.id, Some(expires));
    assert_eq!(token.expires_at, Some(expires));
    let d = f.store.directory();
    assert!(d.by_token(&secret, f.now()).is_ok());
    assert!(d.by_token(&secret, expires - Duration::seconds(1)).is_ok());
    assert!(matches!(
        d.by_token(&secret, expires),
        Err(Refusal::Ended(_))
    ));
    assert!(matches!(
        d.by_token(&secret, f.now() + Duration::hours(2)),
        Err(Refusal::Ended(_))
    ));
}

#[test]
fn sessions_start_expire_and_end() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let secret = f.session(bob.id, 2);
    let start = f.now();
    let d = f.store.directory();
    let (u, sess) = d.by_session(&secret, start).unwrap();
    assert_eq!(u.id, bob.id);
    assert_eq!(sess.hash, account::hash_secret(&secret));
    assert!(
        d.by_session(&secret, start + Duration::minutes(119))
            .is_ok()
    );
    assert!(matches!(
        d.by_session(&secret, start + Duration::hours(2)),
        Err(Refusal::Ended(_))
    ));
    assert!(matches!(
        d.by_session(&secret, start + Duration::hours(3)),
        Err(Refusal::Ended(_))
    ));
    assert_eq!(
        d.by_session("unknown", start).unwrap_err(),
        Refusal::Unknown
    );

    // Sign-out.
    let other = f.session(bob.id, 2);
    f.exec(Command::EndSession {
        hash: account::hash_secret(&secret),
    })
    .unwrap();
    assert_eq!(f.session_works(&secret), Err(Refusal::Unknown));
    assert_eq!(f.session_works(&other), Ok(bob.id));
    // Ending an unknown session is harmless.
    f.exec(Command::EndSession {
        hash: account::hash_secret("nothing"),
    })
    .unwrap();

    // A session for nobody is refused.
    match f.exec(Command::StartSession(Session {
        hash: account::hash_secret("x"),
        user: Id::from_u128(3),
        created_at: f.now(),
        expires_at: f.now() + Duration::hours(1),
    })) {
        Err(Error::NoSuch { what: "user", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn starting_a_session_sweeps_expired_ones() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let short = f.session(bob.id, 1);
    let long = f.session(bob.id, 10);
    f.clock.advance(Duration::hours(2));
    assert!(matches!(f.session_works(&short), Err(Refusal::Ended(_))));
    let fresh = f.session(bob.id, 1);
    assert_eq!(
        f.session_works(&short),
        Err(Refusal::Unknown),
        "the expired session was removed"
    );
    assert_eq!(f.session_works(&long), Ok(bob.id));
    assert_eq!(f.session_works(&fresh), Ok(bob.id));
}

#[test]
fn org_settings_reach_the_directory() {
    let f = Fixture::new();
    let agent = f.user("agent@example.com", Role::Agent, None);
    let d = f.store.directory();
    assert_eq!(d.settings().agent_scope, AgentScope::All);
    assert!(d.access(d.user(agent.id).unwrap()).sees_all);

    f.exec(Command::SetOrgSettings(own_and_team())).unwrap();
    let d = f.store.directory();
    assert_eq!(d.settings().agent_scope, AgentScope::OwnAndTeam);
    let a = d.access(d.user(agent.id).unwrap());
    assert!(!a.sees_all);
    assert_eq!(a.user, sid(&agent));
}

#[test]
fn the_directory_is_rebuilt_only_by_account_changes() {
    let f = Fixture::new();
    let bob = f.user("bob@example.com", Role::Agent, None);
    let before = f.store.directory();
    f.contact("Ada", None);
    assert!(
        Arc::ptr_eq(&before, &f.store.directory()),
        "a record write keeps the same directory"
    );

    // A batch mixing record and account commands, one of which fails: what succeeded is in
    // the directory when the batch returns.
    let secret = account::new_secret("kith_");
    let results = f.store.execute_all(
        vec![
            Command::Create {
                kind: EntityKind::Contact,
                input: Input::with([("first_name", text("Bea"))]),
            },
            Command::CreateToken(NewToken {
                user: bob.id,
                name: "mixed".to_owned(),
                hash: account::hash_secret(&secret),
                expires_at: None,
            }),
            Command::CreateUser(new_user("BOB@example.com", Role::Agent, None)),
            Command::PutTeam(Team {
                key: "east".to_owned(),
                name: "East".to_owned(),
            }),
            // Scoping is for record commands only; account commands are the admin's own.
            Command::Scoped {
                access: Access::everything(),
                command: Box::new(Command::PutTeam(Team {
                    key: "west".to_owned(),
                    name: "West".to_owned(),
                })),
            },
        ],
        "test",
    );
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
    assert!(matches!(results[2], Err(Error::Conflict { .. })));
    assert!(
        matches!(results[4], Err(Error::Invalid(_))),
        "{:?}",
        results[4]
    );
    let d = f.store.directory();
    assert!(!Arc::ptr_eq(&before, &d));
    assert_eq!(d.by_token(&secret, f.now()).unwrap().0.id, bob.id);
    assert_eq!(
        d.teams().len(),
        1,
        "the team is in it, the refused scoped one is not"
    );
    assert_eq!(d.users().len(), 1);
}

#[test]
fn the_directory_survives_close_and_reopen() {
    let mut f = Fixture::new();
    f.team("east", "East");
    let root = f.user("root@example.com", Role::Admin, None);
    let bob = f.user("Bob@Example.com", Role::Agent, Some("east"));
    let (tok, token) = f.token(bob.id, Some(f.now() + Duration::days(30)));
    let (revoked, revoked_token) = f.token(bob.id, None);
    f.exec(Command::RevokeToken {
        id: revoked_token.id,
    })
    .unwrap();
    let sess = f.session(root.id, 8);
    f.exec(Command::SetOrgSettings(own_and_team())).unwrap();
    let before = f.store.directory();

    f.reopen();
    let d = f.store.directory();
    assert!(!Arc::ptr_eq(&before, &d));
    assert_eq!(d.users().len(), 2);
    assert_eq!(d.user(bob.id), before.user(bob.id));
    assert_eq!(
        d.user_by_email("bob@example.com").map(|u| u.id),
        Some(bob.id)
    );
    assert_eq!(d.teams(), before.teams());
    assert_eq!(d.settings().agent_scope, AgentScope::OwnAndTeam);
    assert_eq!(d.tokens(None), before.tokens(None));
    let (u, t) = d.by_token(&tok, f.now()).unwrap();
    assert_eq!((u.id, t.id), (bob.id, token.id));
    assert!(matches!(
        d.by_token(&revoked, f.now()),
        Err(Refusal::Ended(_))
    ));
    assert_eq!(d.by_session(&sess, f.now()).unwrap().0.id, root.id);

    // The reopened store still enforces uniqueness from its tables.
    let e = f
        .try_user(new_user("bob@EXAMPLE.com", Role::Agent, None))
        .unwrap_err();
    assert_eq!(conflict_field(&e), "email");
}

#[test]
fn secrets_are_never_stored_in_clear() {
    let f = Fixture::new();
    let password = "some long password";
    let hash = account::hash_password(password).unwrap();
    let mut new = new_user("bob@example.com", Role::Admin, None);
    new.password_hash = Some(hash.clone());
    let bob = f.try_user(new).unwrap();
    let (token_secret, _) = f.token(bob.id, None);
    let session_secret = f.session(bob.id, 8);
    // Sanity: what is stored does work and verify.
    assert_eq!(f.token_works(&token_secret), Ok(bob.id));
    assert_eq!(f.session_works(&session_secret), Ok(bob.id));
    assert!(account::verify_password(
        password,
        f.store
            .directory()
            .user(bob.id)
            .unwrap()
            .password_hash
            .as_deref()
            .unwrap()
    ));

    let path = f.store.path().to_path_buf();
    f.store.close();
    let bytes = std::fs::read(&path).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    // The test can see stored data at all: the email and the hash are there.
    assert!(contains(b"bob@example.com"));
    assert!(contains(hash.as_bytes()));
    assert!(contains(account::hash_secret(&token_secret).as_bytes()));
    assert!(
        !contains(token_secret.as_bytes()),
        "token secret in the file"
    );
    // The part after the prefix too, in case the prefix were stripped.
    assert!(
        !contains(&token_secret.as_bytes()[5..]),
        "token secret in the file"
    );
    assert!(
        !contains(session_secret.as_bytes()),
        "session secret in the file"
    );
    assert!(!contains(password.as_bytes()), "password in the file");
}

// ---------------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------------

#[test]
fn teams_are_created_and_renamed() {
    let f = Fixture::new();
    let east = f.team("east", "East");
    assert_eq!(
        east,
        Team {
            key: "east".to_owned(),
            name: "East".to_owned()
        }
    );
    f.team("west", "West");
    let renamed = f.team("east", "  Eastern region ");
    assert_eq!(renamed.name, "Eastern region");
    let d = f.store.directory();
    let teams: Vec<(&str, &str)> = d
        .teams()
        .iter()
        .map(|t| (t.key.as_str(), t.name.as_str()))
        .collect();
    assert_eq!(teams, [("east", "Eastern region"), ("west", "West")]);

    for (key, name, field) in [
        ("East", "East", "key"),
        ("east coast", "x", "key"),
        ("", "x", "key"),
        ("east", "  ", "name"),
    ] {
        let e = f
            .exec(Command::PutTeam(Team {
                key: key.to_owned(),
                name: name.to_owned(),
            }))
            .unwrap_err();
        assert_eq!(invalid_field(&e), field, "{key:?} {name:?}");
    }
    assert_eq!(f.store.directory().teams().len(), 2);
}

#[test]
fn a_team_with_members_cannot_be_deleted() {
    let f = Fixture::new();
    f.team("east", "East");
    let bob = f.user("bob@example.com", Role::Agent, Some("east"));
    let c = f.contact("Ada", Some("bob@example.com"));
    assert_eq!(team(&c), s("east"));

    let e = f
        .exec(Command::DeleteTeam {
            key: "east".to_owned(),
        })
        .unwrap_err();
    assert_eq!(conflict_field(&e), "team");
    assert_eq!(f.store.directory().teams().len(), 1);

    // An inactive member still counts.
    f.user("root@example.com", Role::Admin, None);
    f.update_user(
        bob.id,
        UserChanges {
            active: Some(false),
            ..UserChanges::default()
        },
    )
    .unwrap();
    let e = f
        .exec(Command::DeleteTeam {
            key: "east".to_owned(),
        })
        .unwrap_err();
    assert_eq!(conflict_field(&e), "team");

    f.update_user(
        bob.id,
        UserChanges {
            team: Some(None),
            ..UserChanges::default()
        },
    )
    .unwrap();
    assert!(matches!(
        f.exec(Command::DeleteTeam {
            key: "east".to_owned()
        }),
        Ok(Outcome::Deleted)
    ));
    assert!(f.store.directory().teams().is_empty());
    // Records keep the key as plain data.
    assert_eq!(
        team(&f.store.get(EntityKind::Contact, c.id()).unwrap()),
        s("east")
    );
    match f.exec(Command::DeleteTeam {
        key: "east".to_owned(),
    }) {
        Err(Error::NoSuch { what: "team", .. }) => {}
        other => panic!("{other:?}"),
    }
    // Nobody can join it any more.
    let e = f
        .try_user(new_user("carol@example.com", Role::Agent, Some("east")))
        .unwrap_err();
    assert_eq!(invalid_field(&e), "team");
}

// ---------------------------------------------------------------------------------------------
// Record owners and teams
// ---------------------------------------------------------------------------------------------

/// Teams east and west; agents `east@` and `west@`, and `loner@` in no team.
fn owners() -> (Fixture, User, User, User) {
    let f = Fixture::new();
    f.team("east", "East");
    f.team("west", "West");
    let east = f.user("east@example.com", Role::Agent, Some("east"));
    let west = f.user("west@example.com", Role::Agent, Some("west"));
    let loner = f.user("loner@example.com", Role::Agent, None);
    (f, east, west, loner)
}

#[test]
fn an_owner_given_by_email_is_stored_as_the_user_id_with_their_team() {
    let (f, east, _, loner) = owners();
    let c = f.contact("Ada", Some("EAST@Example.com"));
    assert_eq!(owner(&c), sid(&east));
    assert_eq!(team(&c), s("east"));
    // What was returned is what was stored.
    let stored = f.store.get(EntityKind::Contact, c.id()).unwrap();
    assert_eq!(stored, c);

    // By id works the same.
    let c = f.contact("Bea", Some(&east.id.to_string()));
    assert_eq!(owner(&c), sid(&east));
    assert_eq!(team(&c), s("east"));

    // An owner in no team gives no team.
    let c = f.contact("Cy", Some("loner@example.com"));
    assert_eq!(owner(&c), sid(&loner));
    assert_eq!(team(&c), None);

    // Without an owner (and no scoped caller) there is neither.
    let c = f.contact("Di", None);
    assert_eq!((owner(&c), team(&c)), (None, None));

    // Filters on owner and team work with the stored values.
    let page = f
        .store
        .list(
            EntityKind::Contact,
            &Query {
                filters: vec![Filter {
                    field: "team".to_owned(),
                    op: FilterOp::Eq,
                    value: "east".to_owned(),
                }],
                ..q()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 2);
}

#[test]
fn an_unknown_owner_is_invalid() {
    let (f, ..) = owners();
    for bad in [
        "nobody@example.com",
        "not-an-email",
        &Id::from_u128(77).to_string(),
    ] {
        let e = f
            .try_create(
                EntityKind::Contact,
                Input::with([("first_name", text("Ada")), ("owner", text(bad))]),
            )
            .unwrap_err();
        assert_eq!(invalid_field(&e), "owner", "{bad}");
    }
    assert_eq!(f.store.count(EntityKind::Contact, &q()).unwrap(), 0);
}

#[test]
fn a_given_team_must_exist_and_wins_over_the_owners() {
    let (f, east, ..) = owners();
    let e = f
        .try_create(
            EntityKind::Contact,
            Input::with([("first_name", text("Ada")), ("team", text("north"))]),
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "team");
    assert_eq!(f.store.count(EntityKind::Contact, &q()).unwrap(), 0);

    let c = f.create(
        EntityKind::Contact,
        Input::with([
            ("first_name", text("Ada")),
            ("owner", text("east@example.com")),
            ("team", text("west")),
        ]),
    );
    assert_eq!(owner(&c), sid(&east));
    assert_eq!(team(&c), s("west"));

    // A team without an owner.
    let c = f.create(
        EntityKind::Company,
        Input::with([("name", text("Acme")), ("team", text("west"))]),
    );
    assert_eq!((owner(&c), team(&c)), (None, s("west")));

    // An explicit null team with an owner leaves the record in no team.
    let c = f.create(
        EntityKind::Contact,
        Input::with([
            ("first_name", text("Bea")),
            ("owner", text("east@example.com")),
            ("team", Value::Null),
        ]),
    );
    assert_eq!((owner(&c), team(&c)), (sid(&east), None));
}

#[test]
fn interactions_and_tasks_take_the_team_of_what_they_are_linked_to() {
    let (f, _, west, _) = owners();
    let contact = f.contact("Ada", Some("east@example.com"));
    assert_eq!(team(&contact), s("east"));

    let i = f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("call")),
            ("contact_id", Value::Ref(contact.id())),
            ("owner", text("west@example.com")),
        ]),
    );
    assert_eq!(owner(&i), sid(&west), "the owner is the one given");
    assert_eq!(team(&i), s("east"), "the team is the contact's");

    let t = f.create(
        EntityKind::Task,
        Input::with([
            ("title", text("Call back")),
            ("contact_id", Value::Ref(contact.id())),
            ("owner", text("west@example.com")),
        ]),
    );
    assert_eq!((owner(&t), team(&t)), (sid(&west), s("east")));

    // Linked to something without a team: the owner's team.
    let company = f.create(EntityKind::Company, Input::with([("name", text("Acme"))]));
    assert_eq!(team(&company), None);
    let i = f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("note")),
            ("company_id", Value::Ref(company.id())),
            ("owner", text("west@example.com")),
        ]),
    );
    assert_eq!(team(&i), s("west"));

    // Linked to both: the first linked record with a team wins (here only the contact has one).
    let i = f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("email")),
            ("company_id", Value::Ref(company.id())),
            ("contact_id", Value::Ref(contact.id())),
        ]),
    );
    assert_eq!((owner(&i), team(&i)), (None, s("east")));

    // A given team wins over the linked record's.
    let i = f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("call")),
            ("contact_id", Value::Ref(contact.id())),
            ("team", text("west")),
        ]),
    );
    assert_eq!(team(&i), s("west"));

    // Other kinds follow their owner, not what they link to.
    let deal = f.create(
        EntityKind::Deal,
        Input::with([
            ("title", text("Renewal")),
            ("stage", text("lead")),
            ("contact_ids", Value::List(vec![Value::Ref(contact.id())])),
            ("owner", text("west@example.com")),
        ]),
    );
    assert_eq!(team(&deal), s("west"));
}

#[test]
fn changing_the_owner_moves_the_team_unless_a_team_is_given() {
    let (f, east, west, loner) = owners();
    let c = f.contact("Ada", Some("east@example.com"));
    let id = c.id();

    let c = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("owner", text("west@example.com"))]),
        )
        .unwrap();
    assert_eq!((owner(&c), team(&c)), (sid(&west), s("west")));

    let c = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([
                ("owner", text(&east.id.to_string())),
                ("team", text("west")),
            ]),
        )
        .unwrap();
    assert_eq!((owner(&c), team(&c)), (sid(&east), s("west")));

    // To an owner without a team: no team.
    let c = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("owner", text("loner@example.com"))]),
        )
        .unwrap();
    assert_eq!((owner(&c), team(&c)), (sid(&loner), None));

    // Only the team.
    let c = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("team", text("east"))]),
        )
        .unwrap();
    assert_eq!((owner(&c), team(&c)), (sid(&loner), s("east")));

    // Other fields leave both alone.
    let c = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("last_name", text("Lovelace"))]),
        )
        .unwrap();
    assert_eq!((owner(&c), team(&c)), (sid(&loner), s("east")));

    // Clearing the owner keeps the team.
    let c = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("owner", Value::Null)]),
        )
        .unwrap();
    assert_eq!((owner(&c), team(&c)), (None, s("east")));

    // Bad owners and teams change nothing.
    let e = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("owner", text("nobody@example.com"))]),
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "owner");
    let e = f
        .try_update(
            EntityKind::Contact,
            id,
            Input::with([("owner", text("west@example.com")), ("team", text("north"))]),
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "team");
    let stored = f.store.get(EntityKind::Contact, id).unwrap();
    assert_eq!((owner(&stored), team(&stored)), (None, s("east")));

    // The event log records owner and team changes.
    let history = f.store.history(EntityKind::Contact, id, None, 100).unwrap();
    assert!(
        history
            .items
            .iter()
            .any(|e| e.changes.iter().any(|c| c.field == "team"))
    );
    assert!(f.store.verify_indexes().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Scoped writes and reads
// ---------------------------------------------------------------------------------------------

/// An organisation where agents see only their own and their team's records.
struct World {
    f: Fixture,
    /// Agents in east.
    a1: User,
    a2: User,
    /// An agent in west.
    w: User,
    /// A viewer in east.
    viewer: User,
    /// A manager in west.
    manager: User,
    settings: OrgSettings,
}

impl World {
    fn new() -> Self {
        let f = Fixture::new();
        f.team("east", "East");
        f.team("west", "West");
        f.user("root@example.com", Role::Admin, None);
        let a1 = f.user("a1@example.com", Role::Agent, Some("east"));
        let a2 = f.user("a2@example.com", Role::Agent, Some("east"));
        let w = f.user("w@example.com", Role::Agent, Some("west"));
        let viewer = f.user("viewer@example.com", Role::Viewer, Some("east"));
        let manager = f.user("manager@example.com", Role::Manager, Some("west"));
        f.exec(Command::SetOrgSettings(own_and_team())).unwrap();
        World {
            f,
            a1,
            a2,
            w,
            viewer,
            manager,
            settings: own_and_team(),
        }
    }

    fn access(&self, u: &User) -> Access {
        Access::for_user(u, &self.settings)
    }

    fn contact_of(&self, name: &str, u: &User) -> AnyRecord {
        self.f.contact(name, Some(&u.id.to_string()))
    }
}

#[test]
fn a_scoped_create_without_owner_belongs_to_the_caller() {
    let w = World::new();
    let a1 = w.access(&w.a1);
    let c = record(
        w.f.scoped(
            &a1,
            Command::Create {
                kind: EntityKind::Contact,
                input: Input::with([("first_name", text("Ada"))]),
            },
        )
        .unwrap(),
    );
    assert_eq!((owner(&c), team(&c)), (sid(&w.a1), s("east")));
    assert_eq!(w.f.store.get(EntityKind::Contact, c.id()).unwrap(), c);

    // A named owner wins.
    let c = record(
        w.f.scoped(
            &a1,
            Command::Create {
                kind: EntityKind::Contact,
                input: Input::with([
                    ("first_name", text("Bea")),
                    ("owner", text("a2@example.com")),
                ]),
            },
        )
        .unwrap(),
    );
    assert_eq!((owner(&c), team(&c)), (sid(&w.a2), s("east")));

    // A manager's own records go to the manager's team.
    let c = record(
        w.f.scoped(
            &w.access(&w.manager),
            Command::Create {
                kind: EntityKind::Company,
                input: Input::with([("name", text("Acme"))]),
            },
        )
        .unwrap(),
    );
    assert_eq!((owner(&c), team(&c)), (sid(&w.manager), s("west")));

    // The system (no user) creates records without owner.
    let c = record(
        w.f.scoped(
            &Access::everything(),
            Command::Create {
                kind: EntityKind::Contact,
                input: Input::with([("first_name", text("Cy"))]),
            },
        )
        .unwrap(),
    );
    assert_eq!((owner(&c), team(&c)), (None, None));

    // A caller who is no user cannot own what they create.
    let stranger = Access {
        user: Some(Id::from_u128(999).to_string()),
        ..a1.clone()
    };
    let e =
        w.f.scoped(
            &stranger,
            Command::Create {
                kind: EntityKind::Contact,
                input: Input::with([("first_name", text("Eve"))]),
            },
        )
        .unwrap_err();
    assert_eq!(invalid_field(&e), "owner");

    // A scoped interaction takes the caller as owner and the linked contact's team, even when
    // that is not the caller's team (here a contact of the caller's filed under west).
    let west_contact = w.f.create(
        EntityKind::Contact,
        Input::with([
            ("first_name", text("Wes")),
            ("owner", text("a1@example.com")),
            ("team", text("west")),
        ]),
    );
    let i = record(
        w.f.scoped(
            &a1,
            Command::Create {
                kind: EntityKind::Interaction,
                input: Input::with([
                    ("kind", text("call")),
                    ("contact_id", Value::Ref(west_contact.id())),
                ]),
            },
        )
        .unwrap(),
    );
    assert_eq!((owner(&i), team(&i)), (sid(&w.a1), s("west")));
}

#[test]
fn a_scoped_update_or_delete_of_an_invisible_record_is_not_found() {
    let w = World::new();
    let a1 = w.access(&w.a1);
    let theirs = w.contact_of("Wes", &w.w);
    let id = theirs.id();

    assert_not_found(
        w.f.scoped(
            &a1,
            Command::Update {
                kind: EntityKind::Contact,
                id,
                input: Input::with([("last_name", text("Hacked"))]),
            },
        ),
        id,
    );
    assert_not_found(
        w.f.scoped(
            &a1,
            Command::Delete {
                kind: EntityKind::Contact,
                id,
            },
        ),
        id,
    );
    assert_eq!(w.f.store.get(EntityKind::Contact, id).unwrap(), theirs);

    // A record that does not exist at all answers the same.
    let ghost = Id::from_u128(12345);
    assert_not_found(
        w.f.scoped(
            &a1,
            Command::Delete {
                kind: EntityKind::Contact,
                id: ghost,
            },
        ),
        ghost,
    );
    assert_not_found(
        w.f.scoped(
            &a1,
            Command::Update {
                kind: EntityKind::Contact,
                id: ghost,
                input: Input::with([("last_name", text("x"))]),
            },
        ),
        ghost,
    );

    // A record without owner or team is invisible to a restricted agent.
    let orphan = w.f.contact("Nobody", None);
    assert_not_found(
        w.f.scoped(
            &a1,
            Command::Update {
                kind: EntityKind::Contact,
                id: orphan.id(),
                input: Input::with([("last_name", text("x"))]),
            },
        ),
        orphan.id(),
    );
}

#[test]
fn agents_update_visible_records_and_delete_only_their_own() {
    let w = World::new();
    let a1 = w.access(&w.a1);
    let mine = w.contact_of("Mine", &w.a1);
    let teammates = w.contact_of("Theirs", &w.a2);

    // Updating a teammate's record is allowed.
    let c = record(
        w.f.scoped(
            &a1,
            Command::Update {
                kind: EntityKind::Contact,
                id: teammates.id(),
                input: Input::with([("last_name", text("Edited"))]),
            },
        )
        .unwrap(),
    );
    assert_eq!(c.get("last_name"), Some(text("Edited")));
    assert_eq!(owner(&c), sid(&w.a2), "an update does not take ownership");

    // Deleting it is not.
    assert_forbidden(w.f.scoped(
        &a1,
        Command::Delete {
            kind: EntityKind::Contact,
            id: teammates.id(),
        },
    ));
    assert!(w.f.store.get(EntityKind::Contact, teammates.id()).is_ok());

    // Deleting their own is.
    assert!(matches!(
        w.f.scoped(
            &a1,
            Command::Delete {
                kind: EntityKind::Contact,
                id: mine.id(),
            },
        ),
        Ok(Outcome::Deleted)
    ));
    assert_not_found(w.f.store.get(EntityKind::Contact, mine.id()), mine.id());

    // A manager deletes anyone's, in any team.
    assert!(matches!(
        w.f.scoped(
            &w.access(&w.manager),
            Command::Delete {
                kind: EntityKind::Contact,
                id: teammates.id(),
            },
        ),
        Ok(Outcome::Deleted)
    ));
}

#[test]
fn a_viewer_changes_nothing() {
    let w = World::new();
    let v = w.access(&w.viewer);
    assert!(!v.may_write);
    let visible = w.contact_of("Team", &w.a1);
    assert_forbidden(w.f.scoped(
        &v,
        Command::Create {
            kind: EntityKind::Contact,
            input: Input::with([("first_name", text("Ada"))]),
        },
    ));
    assert_forbidden(w.f.scoped(
        &v,
        Command::Update {
            kind: EntityKind::Contact,
            id: visible.id(),
            input: Input::with([("last_name", text("x"))]),
        },
    ));
    assert_forbidden(w.f.scoped(
        &v,
        Command::Delete {
            kind: EntityKind::Contact,
            id: visible.id(),
        },
    ));
    assert_eq!(w.f.store.count(EntityKind::Contact, &q()).unwrap(), 1);
    assert_eq!(
        w.f.store.get(EntityKind::Contact, visible.id()).unwrap(),
        visible
    );
    // A viewer still reads what their team owns.
    assert!(
        w.f.store
            .scoped(v)
            .get(EntityKind::Contact, visible.id())
            .is_ok()
    );
}

#[test]
fn scoped_commands_do_not_nest() {
    let w = World::new();
    let a1 = w.access(&w.a1);
    let inner = Command::Scoped {
        access: Access::everything(),
        command: Box::new(Command::Create {
            kind: EntityKind::Contact,
            input: Input::with([("first_name", text("Ada"))]),
        }),
    };
    let e = w.f.scoped(&a1, inner).unwrap_err();
    assert_eq!(invalid_field(&e), "command");
    let backdated = Command::Backdated {
        at: w.f.now() - Duration::days(1),
        command: Box::new(Command::Create {
            kind: EntityKind::Contact,
            input: Input::with([("first_name", text("Ada"))]),
        }),
    };
    let e = w.f.scoped(&a1, backdated).unwrap_err();
    assert_eq!(invalid_field(&e), "command");
    assert_eq!(w.f.store.count(EntityKind::Contact, &q()).unwrap(), 0);

    // The other way round, a backdated scoped create is fine and owned by the caller.
    let at = w.f.now() - Duration::days(1);
    let c = record(
        w.f.exec(Command::Backdated {
            at,
            command: Box::new(Command::Scoped {
                access: a1.clone(),
                command: Box::new(Command::Create {
                    kind: EntityKind::Contact,
                    input: Input::with([("first_name", text("Ada"))]),
                }),
            }),
        })
        .unwrap(),
    );
    assert_eq!(owner(&c), sid(&w.a1));
    assert_eq!(c.get("created_at"), Some(Value::DateTime(at)));
}

#[test]
fn scoped_commands_report_touching_accounts() {
    let user_cmd = Command::CreateUser(new_user("a@example.com", Role::Agent, None));
    assert!(user_cmd.touches_accounts());
    let scoped = Command::Scoped {
        access: Access::everything(),
        command: Box::new(user_cmd),
    };
    assert!(scoped.touches_accounts());
    let create = Command::Create {
        kind: EntityKind::Contact,
        input: Input::default(),
    };
    assert!(!create.touches_accounts());
    assert!(
        !Command::Scoped {
            access: Access::everything(),
            command: Box::new(create),
        }
        .touches_accounts()
    );
    assert!(
        Command::EndSession {
            hash: String::new()
        }
        .touches_accounts()
    );
    assert!(Command::SetOrgSettings(OrgSettings::default()).touches_accounts());
}

/// A world with records of each visibility; returns (mine, teammate's, other team's,
/// unowned) contacts.
fn seeded(w: &World) -> (AnyRecord, AnyRecord, AnyRecord, AnyRecord) {
    let mine = w.contact_of("Alpha", &w.a1);
    let mate = w.contact_of("Bravo", &w.a2);
    let theirs = w.contact_of("Charlie", &w.w);
    let nobody = w.f.contact("Delta", None);
    (mine, mate, theirs, nobody)
}

#[test]
fn scoped_get_hides_invisible_records() {
    let w = World::new();
    let (mine, mate, theirs, nobody) = seeded(&w);
    let r = w.f.store.scoped(w.access(&w.a1));
    assert!(r.is_restricted());
    assert_eq!(r.get(EntityKind::Contact, mine.id()).unwrap(), mine);
    assert_eq!(r.get(EntityKind::Contact, mate.id()).unwrap(), mate);
    assert_not_found(r.get(EntityKind::Contact, theirs.id()), theirs.id());
    assert_not_found(r.get(EntityKind::Contact, nobody.id()), nobody.id());
    assert_not_found(
        r.get_with_scores(EntityKind::Contact, theirs.id()),
        theirs.id(),
    );

    // A record in the agent's team owned by someone outside it is visible.
    let moved =
        w.f.try_update(
            EntityKind::Contact,
            theirs.id(),
            Input::with([("team", text("east"))]),
        )
        .unwrap();
    assert_eq!(r.get(EntityKind::Contact, theirs.id()).unwrap(), moved);
    // And the other agent in west still sees it as its owner.
    let rw = w.f.store.scoped(w.access(&w.w));
    assert!(rw.get(EntityKind::Contact, theirs.id()).is_ok());
    assert_not_found(rw.get(EntityKind::Contact, mine.id()), mine.id());
}

#[test]
fn scoped_lists_and_counts_hold_only_visible_records() {
    let w = World::new();
    let (mine, mate, theirs, nobody) = seeded(&w);
    let r = w.f.store.scoped(w.access(&w.a1));
    let page = r.list(EntityKind::Contact, &q()).unwrap();
    assert_eq!(ids(&page.items), sorted(vec![mine.id(), mate.id()]));
    assert_eq!(r.count(EntityKind::Contact, &q()).unwrap(), 2);
    assert_eq!(w.f.store.count(EntityKind::Contact, &q()).unwrap(), 4);

    // Sorted by another field (collect-and-sort path).
    let page = r
        .list(
            EntityKind::Contact,
            &Query {
                sort: Some(SortKey::parse("-first_name")),
                ..q()
            },
        )
        .unwrap();
    let names: Vec<Value> = page
        .items
        .iter()
        .map(|r| r.get("first_name").unwrap())
        .collect();
    assert_eq!(names, [text("Bravo"), text("Alpha")]);

    // Paging one at a time finds each visible record once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = r
            .list(
                EntityKind::Contact,
                &Query {
                    limit: 1,
                    cursor: cursor.clone(),
                    ..q()
                },
            )
            .unwrap();
        seen.extend(page.items.iter().map(AnyRecord::id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(sorted(seen), sorted(vec![mine.id(), mate.id()]));

    // Filters: a filter matching an invisible record finds nothing.
    let by_name = |name: &str| Query {
        filters: vec![Filter {
            field: "first_name".to_owned(),
            op: FilterOp::Eq,
            value: name.to_owned(),
        }],
        ..q()
    };
    assert_eq!(
        r.count(EntityKind::Contact, &by_name("Charlie")).unwrap(),
        0
    );
    assert!(
        r.list(EntityKind::Contact, &by_name("Charlie"))
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(r.count(EntityKind::Contact, &by_name("Bravo")).unwrap(), 1);
    assert_eq!(r.count(EntityKind::Contact, &by_name("Delta")).unwrap(), 0);
    assert_not_found(r.get(EntityKind::Contact, theirs.id()), theirs.id());
    assert_not_found(r.get(EntityKind::Contact, nobody.id()), nobody.id());
}

#[test]
fn scoped_index_lookups_and_search_respect_access() {
    let w = World::new();
    let mine = w.f.create(
        EntityKind::Contact,
        Input::with([
            ("first_name", text("Zed Mine")),
            ("email", text("mine@customer.com")),
            ("owner", text("a1@example.com")),
        ]),
    );
    let theirs = w.f.create(
        EntityKind::Contact,
        Input::with([
            ("first_name", text("Zed Theirs")),
            ("email", text("theirs@customer.com")),
            ("owner", text("w@example.com")),
        ]),
    );
    let r = w.f.store.scoped(w.access(&w.a1));

    // Search.
    let search = |s: &str| Query {
        search: Some(s.to_owned()),
        ..q()
    };
    let page = r.list(EntityKind::Contact, &search("zed")).unwrap();
    assert_eq!(ids(&page.items), vec![mine.id()]);
    assert_eq!(r.count(EntityKind::Contact, &search("zed")).unwrap(), 1);
    assert!(
        r.list(EntityKind::Contact, &search("theirs@customer"))
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        w.f.store
            .count(EntityKind::Contact, &search("zed"))
            .unwrap(),
        2
    );

    // The unique email index (a candidates lookup).
    let by_email = |e: &str| Query {
        filters: vec![Filter {
            field: "email".to_owned(),
            op: FilterOp::Eq,
            value: e.to_owned(),
        }],
        ..q()
    };
    assert!(
        r.list(EntityKind::Contact, &by_email("theirs@customer.com"))
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        r.count(EntityKind::Contact, &by_email("theirs@customer.com"))
            .unwrap(),
        0
    );
    assert_eq!(
        r.count(EntityKind::Contact, &by_email("mine@customer.com"))
            .unwrap(),
        1
    );

    // A reference index (interactions by contact) for a visible contact holding an invisible
    // interaction.
    w.f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("call")),
            ("contact_id", Value::Ref(mine.id())),
            ("team", text("west")),
            ("owner", text("w@example.com")),
        ]),
    );
    let seen = w.f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("note")),
            ("contact_id", Value::Ref(mine.id())),
        ]),
    );
    let by_contact = Query {
        filters: vec![Filter {
            field: "contact_id".to_owned(),
            op: FilterOp::Eq,
            value: mine.id().to_string(),
        }],
        ..q()
    };
    let page = r.list(EntityKind::Interaction, &by_contact).unwrap();
    assert_eq!(ids(&page.items), vec![seen.id()]);
    assert_eq!(r.count(EntityKind::Interaction, &by_contact).unwrap(), 1);
    assert_eq!(
        w.f.store
            .count(EntityKind::Interaction, &by_contact)
            .unwrap(),
        2
    );
    assert_not_found(r.get(EntityKind::Contact, theirs.id()), theirs.id());
}

#[test]
fn a_scoped_timeline_leaves_out_linked_records_of_other_teams() {
    let w = World::new();
    let contact = w.contact_of("Ada", &w.a1);
    let ours = w.f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("call")),
            ("contact_id", Value::Ref(contact.id())),
            ("owner", text("w@example.com")),
        ]),
    );
    assert_eq!(team(&ours), s("east"));
    let their_task = w.f.create(
        EntityKind::Task,
        Input::with([
            ("title", text("West's private task")),
            ("contact_id", Value::Ref(contact.id())),
            ("owner", text("w@example.com")),
            ("team", text("west")),
        ]),
    );
    let their_call = w.f.create(
        EntityKind::Interaction,
        Input::with([
            ("kind", text("call")),
            ("contact_id", Value::Ref(contact.id())),
            ("owner", text("w@example.com")),
            ("team", text("west")),
        ]),
    );
    let item_ids = |items: &[crate::query::TimelineItem]| -> Vec<Id> {
        items
            .iter()
            .filter(|i| i.item_type != "change")
            .map(|i| i.id)
            .collect()
    };

    let r = w.f.store.scoped(w.access(&w.a1));
    let page = r
        .timeline(EntityKind::Contact, contact.id(), 50, None)
        .unwrap();
    assert_eq!(item_ids(&page.items), vec![ours.id()]);
    // The contact's own changes are there.
    assert!(page.items.iter().any(|i| i.item_type == "change"));

    let all =
        w.f.store
            .timeline(EntityKind::Contact, contact.id(), 50, None)
            .unwrap();
    assert_eq!(
        sorted(item_ids(&all.items)),
        sorted(vec![ours.id(), their_task.id(), their_call.id()])
    );

    // An agent of the other team cannot open the contact's timeline at all.
    assert_not_found(
        w.f.store
            .scoped(w.access(&w.w))
            .timeline(EntityKind::Contact, contact.id(), 50, None),
        contact.id(),
    );
}

#[test]
fn scoped_history_of_an_invisible_record_is_not_found() {
    let w = World::new();
    let (mine, _, theirs, _) = seeded(&w);
    let r = w.f.store.scoped(w.access(&w.a1));
    let h = r.history(EntityKind::Contact, mine.id(), None, 10).unwrap();
    assert!(!h.items.is_empty());
    assert_not_found(
        r.history(EntityKind::Contact, theirs.id(), None, 10),
        theirs.id(),
    );
    // An event cursor does not get round it.
    assert_not_found(
        r.history(EntityKind::Contact, theirs.id(), Some(u64::MAX), 10),
        theirs.id(),
    );

    // A deleted record's history is only for those who see everything.
    w.f.exec(Command::Delete {
        kind: EntityKind::Contact,
        id: mine.id(),
    })
    .unwrap();
    assert_not_found(
        r.history(EntityKind::Contact, mine.id(), None, 10),
        mine.id(),
    );
    let everything = w.f.store.scoped(Access::everything());
    assert!(
        everything
            .history(EntityKind::Contact, mine.id(), None, 10)
            .unwrap()
            .items
            .len()
            >= 2
    );
}

#[test]
fn unrestricted_access_sees_everything() {
    let w = World::new();
    let (mine, mate, theirs, nobody) = seeded(&w);
    let all = sorted(vec![mine.id(), mate.id(), theirs.id(), nobody.id()]);

    let agent_under_all = Access::for_user(&w.a1, &OrgSettings::default());
    for access in [
        Access::everything(),
        w.access(&w.manager),
        w.access(&w.viewer),
        agent_under_all,
    ] {
        // The viewer in an own-and-team org still sees everything: only agents are limited.
        let r = w.f.store.scoped(access.clone());
        assert!(!r.is_restricted(), "{access:?}");
        assert!(r.access().is_none());
        assert_eq!(ids(&r.list(EntityKind::Contact, &q()).unwrap().items), all);
        assert_eq!(r.count(EntityKind::Contact, &q()).unwrap(), 4);
        for id in &all {
            assert!(r.get(EntityKind::Contact, *id).is_ok());
            assert!(r.history(EntityKind::Contact, *id, None, 10).is_ok());
        }
        assert!(
            r.timeline(EntityKind::Contact, theirs.id(), 10, None)
                .is_ok()
        );
    }

    // A manager may change and delete any record through a scoped write.
    let m = w.access(&w.manager);
    w.f.scoped(
        &m,
        Command::Update {
            kind: EntityKind::Contact,
            id: nobody.id(),
            input: Input::with([("last_name", text("Managed"))]),
        },
    )
    .unwrap();
    assert!(matches!(
        w.f.scoped(
            &m,
            Command::Delete {
                kind: EntityKind::Contact,
                id: mine.id(),
            },
        ),
        Ok(Outcome::Deleted)
    ));
    // And so may the system.
    assert!(matches!(
        w.f.scoped(
            &Access::everything(),
            Command::Delete {
                kind: EntityKind::Contact,
                id: nobody.id(),
            },
        ),
        Ok(Outcome::Deleted)
    ));
}

/// A store with teams `east` and `west` and an agent, `mover@example.com`, in `east`.
fn mover_fixture() -> (Fixture, User) {
    let f = Fixture::new();
    f.team("east", "East");
    f.team("west", "West");
    let u = f.user("mover@example.com", Role::Agent, Some("east"));
    (f, u)
}

/// Creates a contact owned by the mover.
fn owned_by_mover(name: &str) -> Command {
    Command::Create {
        kind: EntityKind::Contact,
        input: Input::with([
            ("first_name", text(name)),
            ("owner", text("mover@example.com")),
        ]),
    }
}

/// Moves user `id` to team `west`.
fn move_to_west(id: Id) -> Command {
    Command::UpdateUser {
        id,
        changes: UserChanges {
            team: Some(Some("west".to_owned())),
            ..UserChanges::default()
        },
    }
}

#[test]
fn an_owner_moved_to_another_team_mid_batch_gives_later_records_the_new_team() {
    // The writer remembers resolved owners for the rest of a batch; a change to accounts in
    // that batch must make it look again.
    let (f, u) = mover_fixture();
    let results = f.store.execute_all(
        vec![
            owned_by_mover("Before"),
            move_to_west(u.id),
            owned_by_mover("After"),
        ],
        "test",
    );
    let mut results = results.into_iter();
    let before = record(results.next().unwrap().unwrap());
    assert!(results.next().unwrap().is_ok());
    let after = record(results.next().unwrap().unwrap());
    assert_eq!(team(&before), s("east"));
    assert_eq!(team(&after), s("west"));
    assert_eq!(owner(&after), sid(&u));
}

#[test]
fn an_owner_moved_to_another_team_between_batches_gives_later_records_the_new_team() {
    // The writer also remembers resolved owners from batch to batch; a later batch that
    // changes accounts must make it look again.
    let (f, u) = mover_fixture();
    let before = record(f.store.execute(owned_by_mover("Before"), "test").unwrap());
    f.store.execute(move_to_west(u.id), "test").unwrap();
    let after = record(f.store.execute(owned_by_mover("After"), "test").unwrap());
    assert_eq!(team(&before), s("east"));
    assert_eq!(team(&after), s("west"));
}
