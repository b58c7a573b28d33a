//! Accounts in the store: users, teams, API tokens, sessions and organisation settings; the
//! owner and team every record carries; and the checks a scoped write ([`Command::Scoped`])
//! makes before it changes anything.
//!
//! [`Command::Scoped`]: super::Command::Scoped

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::tables::{self, decode, encode};
use super::write::{Ctx, Tables};
use crate::account::{
    Access, Directory, NewUser, OrgSettings, Session, Team, Token, User, UserChanges,
};
use crate::clock::Timestamp;
use crate::entity::{EntityKind, Record};
use crate::error::Error;
use crate::id::Id;
use crate::schema;
use crate::with_kind;

/// A new API token: the store gives it an id and its creation time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    /// The user it acts as.
    pub user: Id,
    /// What it is for.
    pub name: String,
    /// SHA-256 (hex) of the secret ([`crate::account::hash_secret`]).
    pub hash: String,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
}

impl Tables<'_> {
    fn load_user(&self, id: Id) -> Result<Option<User>, Error> {
        let users = self.txn.open_table(tables::USERS)?;
        let found = users.get(id.as_u128())?;
        Ok(match found {
            Some(b) => Some(decode(b.value(), || format!("user {id}"))?),
            None => None,
        })
    }

    fn user_id_by_email(&self, email: &str) -> Result<Option<Id>, Error> {
        let emails = self.txn.open_table(tables::USER_EMAILS)?;
        let found = emails.get(email.trim().to_lowercase().as_str())?;
        Ok(found.map(|v| Id::from_u128(v.value())))
    }

    fn team_exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.txn.open_table(tables::TEAMS)?.get(key)?.is_some())
    }

    fn store_user(&self, user: &User, old_email: Option<&str>) -> Result<(), Error> {
        let bytes = encode(user)?;
        self.txn
            .open_table(tables::USERS)?
            .insert(user.id.as_u128(), bytes.as_slice())?;
        let mut emails = self.txn.open_table(tables::USER_EMAILS)?;
        if let Some(old) = old_email {
            emails.remove(old.to_lowercase().as_str())?;
        }
        emails.insert(user.email.to_lowercase().as_str(), user.id.as_u128())?;
        Ok(())
    }

    /// Checks an email for a user: syntax, and not taken by another user.
    fn user_email(&self, email: &str, this: Option<Id>) -> Result<String, Error> {
        let email = schema::email(email).map_err(|m| Error::invalid("email", m))?;
        if let Some(other) = self.user_id_by_email(&email)?
            && Some(other) != this
        {
            return Err(Error::Conflict {
                field: "email".to_owned(),
                message: format!("user {other} already signs in as {email}"),
            });
        }
        Ok(email)
    }

    fn user_team(&self, team: Option<String>) -> Result<Option<String>, Error> {
        match team {
            Some(t) if !t.trim().is_empty() => {
                let t = t.trim().to_owned();
                if !self.team_exists(&t)? {
                    return Err(Error::invalid("team", format!("there is no team '{t}'")));
                }
                Ok(Some(t))
            }
            _ => Ok(None),
        }
    }

    pub(super) fn create_user(&mut self, new: NewUser, ctx: &Ctx<'_>) -> Result<User, Error> {
        let email = self.user_email(&new.email, None)?;
        let team = self.user_team(new.team)?;
        let name = match new.name.trim() {
            "" => email.split('@').next().unwrap_or_default().to_owned(),
            n if n.len() > 200 => return Err(Error::invalid("name", "must be at most 200 bytes")),
            n => n.to_owned(),
        };
        let user = User {
            id: ctx.ids.next(&ctx.now),
            email,
            name,
            role: new.role,
            team,
            active: true,
            password_hash: new.password_hash,
            created_at: ctx.now,
            updated_at: ctx.now,
        };
        self.store_user(&user, None)?;
        Ok(user)
    }

    pub(super) fn update_user(
        &mut self,
        id: Id,
        c: UserChanges,
        ctx: &Ctx<'_>,
    ) -> Result<User, Error> {
        let before = self.load_user(id)?.ok_or(Error::NoSuch {
            what: "user",
            name: id.to_string(),
        })?;
        let mut user = before.clone();
        if let Some(email) = c.email {
            user.email = self.user_email(&email, Some(id))?;
        }
        if let Some(name) = c.name {
            let name = name.trim();
            if name.is_empty() || name.len() > 200 {
                return Err(Error::invalid("name", "must be 1 to 200 bytes"));
            }
            name.clone_into(&mut user.name);
        }
        if let Some(team) = c.team {
            user.team = self.user_team(team)?;
        }
        if let Some(role) = c.role {
            user.role = role;
        }
        if let Some(active) = c.active {
            user.active = active;
        }
        let demoted = before.role == crate::account::Role::Admin
            && (user.role != crate::account::Role::Admin || !user.active);
        if demoted && self.other_active_admins(id)? == 0 {
            return Err(Error::Conflict {
                field: if user.active { "role" } else { "active" }.to_owned(),
                message: "this is the last active admin; make someone else admin first".to_owned(),
            });
        }
        let password_changed = c.password_hash.is_some();
        if let Some(hash) = c.password_hash {
            user.password_hash = Some(hash);
        }
        user.updated_at = ctx.now;
        self.store_user(&user, Some(&before.email))?;
        // A new password or a deactivation ends sessions, so a stolen cookie stops working.
        if password_changed || !user.active {
            self.end_sessions(id, c.keep_session.as_deref())?;
        }
        Ok(user)
    }

    fn other_active_admins(&self, except: Id) -> Result<usize, Error> {
        let users = self.txn.open_table(tables::USERS)?;
        let mut n = 0;
        for entry in users.iter()? {
            let (k, v) = entry?;
            let u: User = decode(v.value(), || format!("user {}", Id::from_u128(k.value())))?;
            if u.id != except && u.active && u.role == crate::account::Role::Admin {
                n += 1;
            }
        }
        Ok(n)
    }

    fn end_sessions(&self, user: Id, keep: Option<&str>) -> Result<(), Error> {
        let mut sessions = self.txn.open_table(tables::SESSIONS)?;
        let mut gone = Vec::new();
        for entry in sessions.iter()? {
            let (k, v) = entry?;
            let s: Session = decode(v.value(), || "session".to_owned())?;
            if s.user == user && Some(k.value()) != keep {
                gone.push(k.value().to_owned());
            }
        }
        for k in gone {
            sessions.remove(k.as_str())?;
        }
        Ok(())
    }

    pub(super) fn put_team(&mut self, team: Team) -> Result<Team, Error> {
        team.check()?;
        let team = Team {
            key: team.key,
            name: team.name.trim().to_owned(),
        };
        let bytes = encode(&team)?;
        self.txn
            .open_table(tables::TEAMS)?
            .insert(team.key.as_str(), bytes.as_slice())?;
        Ok(team)
    }

    pub(super) fn delete_team(&mut self, key: &str) -> Result<(), Error> {
        if !self.team_exists(key)? {
            return Err(Error::NoSuch {
                what: "team",
                name: key.to_owned(),
            });
        }
        let members: Vec<String> = {
            let users = self.txn.open_table(tables::USERS)?;
            let mut m = Vec::new();
            for entry in users.iter()? {
                let (_, v) = entry?;
                let u: User = decode(v.value(), || "user".to_owned())?;
                if u.team.as_deref() == Some(key) {
                    m.push(u.email);
                }
            }
            m
        };
        if !members.is_empty() {
            return Err(Error::Conflict {
                field: "team".to_owned(),
                message: format!(
                    "team '{key}' still has members ({}); move them first",
                    members.join(", ")
                ),
            });
        }
        self.txn.open_table(tables::TEAMS)?.remove(key)?;
        Ok(())
    }

    pub(super) fn create_token(&mut self, t: NewToken, ctx: &Ctx<'_>) -> Result<Token, Error> {
        let user = self.load_user(t.user)?.ok_or(Error::NoSuch {
            what: "user",
            name: t.user.to_string(),
        })?;
        if !user.active {
            return Err(Error::invalid(
                "user",
                format!("{} is deactivated", user.email),
            ));
        }
        let name = t.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::invalid("name", "must be 1 to 200 bytes"));
        }
        if t.expires_at.is_some_and(|e| e <= ctx.now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        if t.hash.len() != 64 {
            return Err(Error::invalid("hash", "must be a SHA-256 in hex"));
        }
        let token = Token {
            id: ctx.ids.next(&ctx.now),
            user: t.user,
            name: name.to_owned(),
            hash: t.hash,
            created_at: ctx.now,
            expires_at: t.expires_at,
            revoked_at: None,
        };
        let bytes = encode(&token)?;
        self.txn
            .open_table(tables::TOKENS)?
            .insert(token.id.as_u128(), bytes.as_slice())?;
        Ok(token)
    }

    pub(super) fn revoke_token(&mut self, id: Id, ctx: &Ctx<'_>) -> Result<Token, Error> {
        let mut tokens = self.txn.open_table(tables::TOKENS)?;
        let mut token: Token = match tokens.get(id.as_u128())? {
            Some(b) => decode(b.value(), || format!("token {id}"))?,
            None => {
                return Err(Error::NoSuch {
                    what: "token",
                    name: id.to_string(),
                });
            }
        };
        if token.revoked_at.is_none() {
            token.revoked_at = Some(ctx.now);
            let bytes = encode(&token)?;
            tokens.insert(id.as_u128(), bytes.as_slice())?;
        }
        Ok(token.public())
    }

    pub(super) fn start_session(&mut self, s: Session, ctx: &Ctx<'_>) -> Result<(), Error> {
        let user = self.load_user(s.user)?.ok_or(Error::NoSuch {
            what: "user",
            name: s.user.to_string(),
        })?;
        if !user.active {
            return Err(Error::invalid("user", "this account is deactivated"));
        }
        let mut sessions = self.txn.open_table(tables::SESSIONS)?;
        // Sweep expired sessions here, where sessions are written anyway.
        let mut expired = Vec::new();
        for entry in sessions.iter()? {
            let (k, v) = entry?;
            let old: Session = decode(v.value(), || "session".to_owned())?;
            if old.expires_at <= ctx.now {
                expired.push(k.value().to_owned());
            }
        }
        for k in expired {
            sessions.remove(k.as_str())?;
        }
        let bytes = encode(&s)?;
        sessions.insert(s.hash.as_str(), bytes.as_slice())?;
        Ok(())
    }

    pub(super) fn end_session(&mut self, hash: &str) -> Result<(), Error> {
        self.txn.open_table(tables::SESSIONS)?.remove(hash)?;
        Ok(())
    }

    pub(super) fn set_org_settings(&mut self, s: &OrgSettings) -> Result<(), Error> {
        let bytes = encode(s)?;
        self.txn
            .open_table(tables::META)?
            .insert(tables::ORG_SETTINGS_KEY, bytes.as_slice())?;
        Ok(())
    }

    /// Turns the `owner` a caller gave (a user id or a user's email) into the user id records
    /// store, and returns that user's team.
    pub(super) fn resolve_owner(&self, given: &str) -> Result<(String, Option<String>), Error> {
        if let Some(found) = self.owners.borrow().get(given) {
            return Ok(found.clone());
        }
        let found = self.lookup_owner(given)?;
        self.owners
            .borrow_mut()
            .insert(given.to_owned(), found.clone());
        Ok(found)
    }

    fn lookup_owner(&self, given: &str) -> Result<(String, Option<String>), Error> {
        let by_id = given.parse::<Id>().ok();
        let id = match by_id {
            Some(id) => Some(id),
            None => self.user_id_by_email(given)?,
        };
        let user = match id {
            Some(id) => self.load_user(id)?,
            None => None,
        };
        match user {
            Some(u) => Ok((u.id.to_string(), u.team)),
            None => Err(Error::invalid(
                "owner",
                format!("there is no user with id or email '{given}'"),
            )),
        }
    }

    /// Settles a record's owner and team before it is checked and written.
    ///
    /// `before` is the stored record on an update (`None` on create); `owner_given` and
    /// `team_given` say whether the caller's input named them. A given owner must be a user
    /// (by id or email) and is stored as its id; a given team must exist (unless it is the
    /// team the record already has). A new record without an owner belongs to the scoped
    /// caller; a new task without one, made by the system for an assignee who is a user, belongs
    /// to that user. A team not given follows the owner when the owner is set or really changes; a
    /// new interaction or task takes the team of the first record it is linked to that has
    /// one.
    pub(super) fn settle_owner<R: Record>(
        &self,
        r: &mut R,
        before: Option<&R>,
        owner_given: bool,
        team_given: bool,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        use crate::value::Value;
        let creating = before.is_none();
        let mut owner_team = None;
        let given = r
            .owner()
            .map(str::to_owned)
            .filter(|o| !o.trim().is_empty());
        if owner_given && let Some(given) = given {
            let (id, team) = self.resolve_owner(&given)?;
            let changed = before.is_none_or(|b| b.owner() != Some(id.as_str()));
            r.set("owner", Value::Text(id))?;
            if changed {
                owner_team = Some(team);
            }
        } else if creating && let Some(me) = ctx.access.as_ref().and_then(|a| a.user.clone()) {
            // No owner (or an empty one) on a signed-in user's create: the record is theirs,
            // so a restricted agent never makes a record they cannot see.
            let (id, team) = self.resolve_owner(&me)?;
            r.set("owner", Value::Text(id))?;
            owner_team = Some(team);
        } else if creating
            && R::KIND == EntityKind::Task
            && let Some(Value::Text(who)) = r.get("assignee")
            && let Ok((id, team)) = self.resolve_owner(&who)
        {
            // A task a workflow (or the system) makes for a user is that user's, so the
            // person it is for can see it whatever the organisation's access setting.
            r.set("owner", Value::Text(id))?;
            owner_team = Some(team);
        }
        if team_given {
            let unchanged = before.is_some_and(|b| b.team() == r.team());
            if let Some(t) = r.team().map(str::to_owned)
                && !unchanged
                && !self.team_exists(&t)?
            {
                return Err(Error::invalid("team", format!("there is no team '{t}'")));
            }
            return Ok(());
        }
        if creating && matches!(R::KIND, EntityKind::Interaction | EntityKind::Task) {
            for (_, kind, id) in r.references() {
                let team = with_kind!(kind, T => self.load::<T>(id)?.and_then(|t| t.team().map(str::to_owned)));
                if let Some(team) = team {
                    r.set("team", Value::Text(team))?;
                    return Ok(());
                }
            }
        }
        if let Some(team) = owner_team {
            r.set("team", team.map_or(Value::Null, Value::Text))?;
        }
        Ok(())
    }

    /// Checks that a restricted caller links a record only to records they may see; one they
    /// may not see is answered exactly like one that does not exist, so ids do not leak.
    /// Links the record already had (`before`) stay: an agent may edit a deal of their team
    /// that someone else linked to a contact they cannot see.
    pub(super) fn check_refs_visible<R: Record>(
        &self,
        r: &R,
        before: Option<&R>,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(access) = ctx.access.as_ref().filter(|a| !a.sees_all) else {
            return Ok(());
        };
        let had = before.map(Record::references).unwrap_or_default();
        for (field, kind, id) in r.references() {
            if had.iter().any(|(_, k, i)| *k == kind && *i == id) {
                continue;
            }
            let visible = with_kind!(kind, T => self
                .load::<T>(id)?
                .is_none_or(|t| access.sees(t.owner(), t.team())));
            if !visible {
                return Err(Error::invalid(
                    field,
                    format!("refers to {kind} {id}, which does not exist"),
                ));
            }
        }
        Ok(())
    }

    /// Checks that the scoped caller (if any) may change the record `before` at all.
    pub(super) fn check_may_change<R: Record>(
        &self,
        before: &R,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(access) = &ctx.access else {
            return Ok(());
        };
        if !access.sees(before.owner(), before.team()) {
            return Err(Error::NotFound {
                kind: R::KIND,
                id: before.id(),
            });
        }
        if !access.may_write {
            return Err(Error::Forbidden(
                "your role is read-only: records cannot be changed".to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks that the scoped caller (if any) may delete the record of `kind` with this
    /// owner and team.
    pub(super) fn check_may_delete(
        &self,
        kind: EntityKind,
        id: Id,
        owner: Option<&str>,
        team: Option<&str>,
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(access) = &ctx.access else {
            return Ok(());
        };
        if !access.sees(owner, team) {
            return Err(Error::NotFound { kind, id });
        }
        if !access.may_write {
            return Err(Error::Forbidden(
                "your role is read-only: records cannot be deleted".to_owned(),
            ));
        }
        if !access.may_delete_others && !access.owns(owner) {
            return Err(Error::Forbidden(format!(
                "agents may delete only records they own; this {kind} belongs to someone else"
            )));
        }
        Ok(())
    }
}

impl Tables<'_> {
    /// Checks that a caller who may delete only their own records owns every interaction and
    /// task deleting `target` would take with it (those linked to nothing else).
    pub(super) fn check_cascade(
        &self,
        target: Id,
        referrers: &[(EntityKind, Id)],
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(access) = ctx.access.as_ref().filter(|a| !a.may_delete_others) else {
            return Ok(());
        };
        let mut others = 0;
        for (kind, id) in referrers {
            if !matches!(kind, EntityKind::Interaction | EntityKind::Task) {
                continue;
            }
            let orphaned_by_someone_else = with_kind!(*kind, T => self.load::<T>(*id)?.is_some_and(|t| {
                let mut after = t.clone();
                after.clear_reference(target) && after.references().is_empty() && !access.owns(t.owner())
            }));
            if orphaned_by_someone_else {
                others += 1;
            }
        }
        if others > 0 {
            return Err(Error::Forbidden(format!(
                "deleting this record would also delete {others} interaction(s) or task(s) \
                 that belong to someone else; agents may delete only their own records"
            )));
        }
        Ok(())
    }
}

/// Reads every account table from a snapshot into a [`Directory`].
pub(super) fn load_directory(txn: &ReadTransaction) -> Result<Directory, Error> {
    let mut users = Vec::new();
    for entry in txn.open_table(tables::USERS)?.iter()? {
        let (k, v) = entry?;
        users.push(decode(v.value(), || {
            format!("user {}", Id::from_u128(k.value()))
        })?);
    }
    let mut tokens = Vec::new();
    for entry in txn.open_table(tables::TOKENS)?.iter()? {
        let (k, v) = entry?;
        tokens.push(decode(v.value(), || {
            format!("token {}", Id::from_u128(k.value()))
        })?);
    }
    let mut sessions = Vec::new();
    for entry in txn.open_table(tables::SESSIONS)?.iter()? {
        let (_, v) = entry?;
        sessions.push(decode(v.value(), || "session".to_owned())?);
    }
    let mut teams = Vec::new();
    for entry in txn.open_table(tables::TEAMS)?.iter()? {
        let (k, v) = entry?;
        teams.push(decode(v.value(), || format!("team {}", k.value()))?);
    }
    let settings = match txn
        .open_table(tables::META)?
        .get(tables::ORG_SETTINGS_KEY)?
    {
        Some(b) => decode(b.value(), || "organisation settings".to_owned())?,
        None => OrgSettings::default(),
    };
    Ok(Directory::new(users, tokens, sessions, teams, settings))
}

/// Creates the account tables in a new or older file.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(tables::USERS)?;
    txn.open_table(tables::USER_EMAILS)?;
    txn.open_table(tables::TEAMS)?;
    txn.open_table(tables::TOKENS)?;
    txn.open_table(tables::SESSIONS)?;
    Ok(())
}

/// Whether a record is visible under `access` (`None`: everything is).
pub(super) fn visible<R: Record>(access: Option<&Access>, r: &R) -> bool {
    access.is_none_or(|a| a.sees(r.owner(), r.team()))
}
