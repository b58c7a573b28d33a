//! The write path: one [`Command`] applied inside a write transaction shared with the rest of
//! its batch.
//!
//! Every command first reads and validates everything it needs, and only then writes. A
//! command that fails validation has therefore written nothing, so it can fail alone while
//! the rest of its batch commits. Only a storage error can fail between writes, and that
//! aborts the whole transaction.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use redb::{ReadableTable, WriteTransaction};

use super::tables::{decode, encode, encode_into};
use super::wal::{Logged, Opener, Redo};
use crate::clock::Timestamp;
use crate::custom::{self, FieldDef, NewFieldDef};
use crate::entity::{
    AnyRecord, EntityKind, IndexKey, IntoAny, Lookup, Record, all_index_keys, field_map,
};
use crate::error::Error;
use crate::event::{self, Event, FieldChange, Operation};
use crate::id::{Id, IdGenerator};
use crate::pipeline::Pipeline;
use crate::plugin::{PluginRecord, ScoreBatch, WriteHook};
use crate::value::Value;
use crate::with_kind;
use crate::workflow::{Delivery, DeliveryFailure};

/// Field values for a create or a partial update. Fields left out are unchanged (on create:
/// empty); `Value::Null` clears a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    /// Built-in fields by name.
    pub fields: BTreeMap<String, Value>,
    /// Custom fields by name (without the `custom.` prefix).
    pub custom: BTreeMap<String, Value>,
}

impl Input {
    /// An input with the given built-in fields.
    pub fn with(fields: impl IntoIterator<Item = (&'static str, Value)>) -> Self {
        Input {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            custom: BTreeMap::new(),
        }
    }
}

/// A change to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create a record.
    Create {
        /// Its kind.
        kind: EntityKind,
        /// Its fields.
        input: Input,
    },
    /// Change some fields of a record.
    Update {
        /// Its kind.
        kind: EntityKind,
        /// Its id.
        id: Id,
        /// The fields to change.
        input: Input,
    },
    /// Delete a record. References to it are cleared; interactions and tasks left linked to
    /// nothing are deleted with it.
    Delete {
        /// Its kind.
        kind: EntityKind,
        /// Its id.
        id: Id,
    },
    /// Define a custom field.
    DefineField {
        /// The kind it belongs to.
        kind: EntityKind,
        /// The definition.
        def: NewFieldDef,
    },
    /// Change a custom field an admin defined (label, help, required, more options).
    ChangeField {
        /// The kind it belongs to.
        kind: EntityKind,
        /// Its name.
        name: String,
        /// What changes.
        changes: crate::custom::FieldChanges,
    },
    /// Remove a custom field definition; stored values stay readable as plain data.
    DeleteField {
        /// The kind it belongs to.
        kind: EntityKind,
        /// Its name.
        name: String,
    },
    /// Create a pipeline, or replace one (stages in use by deals must remain).
    PutPipeline(Pipeline),
    /// Install, upgrade or reconfigure a plugin: stores its record, its binary when given
    /// (by hash; a binary no plugin uses any more is dropped) and, when given, makes its
    /// custom field definitions exactly `fields` (a field another owner already defines is
    /// a conflict). All in one transaction, so a failed install leaves nothing behind.
    PutPlugin {
        /// The plugin as it should be stored.
        plugin: PluginRecord,
        /// Its WebAssembly binary, when it changed.
        wasm: Option<Vec<u8>>,
        /// Its custom fields (each with `plugin` set to its id), when they changed.
        fields: Option<Vec<FieldDef>>,
    },
    /// Uninstall a plugin: its record, binary, private storage, scores and field
    /// definitions go; values of its fields stay on records as plain data.
    RemovePlugin {
        /// Its id.
        id: String,
    },
    /// Change a plugin's private key-value storage, all or nothing, within `quota` bytes.
    PluginKv {
        /// The plugin.
        plugin: String,
        /// Keys to set.
        set: Vec<(String, Vec<u8>)>,
        /// Keys to delete.
        delete: Vec<String>,
        /// The most bytes (keys plus values) the plugin may hold.
        quota: usize,
    },
    /// Store scores computed by a plugin's scorer.
    PutScores(ScoreBatch),
    /// Apply a workflow plugin's call: its effects, storage changes and cursor move (or
    /// fired timer), all or nothing, as the plugin (`plugin:<id>`) acting.
    Deliver(Delivery),
    /// Record that a workflow call failed (kept in the plugin's delivery state for admins).
    DeliveryFailed {
        /// The plugin.
        plugin: String,
        /// What failed.
        failure: DeliveryFailure,
    },
    /// Create a user.
    CreateUser(crate::account::NewUser),
    /// Change a user.
    UpdateUser {
        /// Their id.
        id: Id,
        /// What changes.
        changes: crate::account::UserChanges,
    },
    /// Create or rename a team.
    PutTeam(crate::account::Team),
    /// Delete a team that has no members; records keep its key as plain data.
    DeleteTeam {
        /// Its key.
        key: String,
    },
    /// Create an API token (the caller made the secret and passes only its hash).
    CreateToken(super::accounts::NewToken),
    /// Revoke an API token: it is refused from now on.
    RevokeToken {
        /// Its id.
        id: Id,
    },
    /// Record a sign-in session.
    StartSession(crate::account::Session),
    /// End a sign-in session (sign-out).
    EndSession {
        /// The hash of its secret.
        hash: String,
    },
    /// Change the organisation's settings.
    SetOrgSettings(crate::account::OrgSettings),
    /// Run a record command as a signed-in user: a record they may not see is not found, a
    /// read-only role changes nothing, agents delete only what they own, and a new record
    /// without an owner is theirs.
    Scoped {
        /// What the user may see and do.
        access: crate::account::Access,
        /// What they asked for.
        command: Box<Command>,
    },
    /// Run a command as if it happened at `at`, which must not be in the future: its
    /// timestamps, the ids it creates and its events carry `at`. For imports that keep their
    /// history and for demo data; never reachable from the HTTP API.
    Backdated {
        /// When it happened.
        at: Timestamp,
        /// What happened.
        command: Box<Command>,
    },
}

impl Command {
    /// Whether the writer must run it alone in its own transaction, aborted if it fails:
    /// true for a workflow delivery that writes more than one thing that can fail.
    pub fn needs_own_transaction(&self) -> bool {
        match self {
            Command::Deliver(d) => d.needs_own_transaction(),
            Command::Scoped { command, .. } | Command::Backdated { command, .. } => {
                command.needs_own_transaction()
            }
            _ => false,
        }
    }

    /// Whether the command changes what every record's presentation may depend on: field
    /// definitions, pipelines, plugins (record changes and scores are tracked one by one).
    pub fn changes_schema(&self) -> bool {
        match self {
            Command::DefineField { .. }
            | Command::ChangeField { .. }
            | Command::DeleteField { .. }
            | Command::PutPipeline(_)
            | Command::PutPlugin { .. }
            | Command::RemovePlugin { .. } => true,
            Command::Scoped { command, .. } | Command::Backdated { command, .. } => {
                command.changes_schema()
            }
            _ => false,
        }
    }

    /// Whether every write it makes goes through the write path's logged tables (see
    /// [`super::wal`]), so a batch of such commands can be made durable by its redo record
    /// alone: record creates, updates and deletes. Anything else commits durably.
    pub fn is_logged(&self) -> bool {
        match self {
            Command::Create { .. } | Command::Update { .. } | Command::Delete { .. } => true,
            Command::Scoped { command, .. } | Command::Backdated { command, .. } => {
                command.is_logged()
            }
            _ => false,
        }
    }

    /// Whether it changes accounts (users, teams, tokens, sessions, settings), after which the
    /// store's in-memory [`crate::account::Directory`] is rebuilt.
    pub fn touches_accounts(&self) -> bool {
        match self {
            Command::CreateUser(_)
            | Command::UpdateUser { .. }
            | Command::PutTeam(_)
            | Command::DeleteTeam { .. }
            | Command::CreateToken(_)
            | Command::RevokeToken { .. }
            | Command::StartSession(_)
            | Command::EndSession { .. }
            | Command::SetOrgSettings(_) => true,
            Command::Scoped { command, .. } | Command::Backdated { command, .. } => {
                command.touches_accounts()
            }
            _ => false,
        }
    }
}

/// What a successful command produced.
// One Outcome is made per command and moved straight to its caller, so the size difference
// between variants costs nothing worth an extra allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The record as stored.
    Record(AnyRecord),
    /// The record is gone.
    Deleted,
    /// The field definition as stored.
    Field(FieldDef),
    /// The pipeline as stored.
    Pipeline(Pipeline),
    /// The plugin as stored.
    Plugin(PluginRecord),
    /// The user as stored.
    User(crate::account::User),
    /// The team as stored.
    Team(crate::account::Team),
    /// The token as stored (with its hash; strip it before showing it).
    Token(crate::account::Token),
    /// The change was applied; there is nothing to return.
    Done,
}

/// The tables of one write transaction.
pub(crate) struct Tables<'t> {
    /// The transaction, for tables only some commands need (plugins, scores): they are
    /// opened on use rather than by every batch.
    pub(super) txn: &'t WriteTransaction,
    // The record tables and the indexes only some commands touch are opened on first use: a
    // batch of contact creates would otherwise open (and close, at commit) a dozen tables it
    // never reads, which was a tenth of a small batch's cost.
    records: Vec<OnceCell<Logged<'t, u128, &'static [u8]>>>,
    unique: OnceCell<Logged<'t, (&'static str, &'static str), u128>>,
    text: OnceCell<Logged<'t, (&'static str, &'static str, u128), ()>>,
    refs: OnceCell<Logged<'t, (u128, i64, u128), u8>>,
    time: OnceCell<Logged<'t, (&'static str, i64, u128), ()>>,
    pipelines: OnceCell<Logged<'t, &'static str, &'static [u8]>>,
    events: Logged<'t, u64, &'static [u8]>,
    events_by_record: Logged<'t, (u128, u64), ()>,
    pub(super) fields: Logged<'t, (&'static str, &'static str), &'static [u8]>,
    /// The redo record of the batch: every change made through the tables above (see
    /// [`super::wal`]).
    pub(super) redo: Redo,
    /// Custom field definitions read so far in this batch, by kind. Every create and update
    /// needs them, and only commands that change definitions change them (and clear it).
    pub(super) defs: BTreeMap<EntityKind, Rc<[FieldDef]>>,
    /// Records whose stored form or scores the current command changed (drained by the
    /// writer after each command, for the commit observer).
    pub(super) touched: Vec<Id>,
    /// Owners resolved so far (see [`OwnerMemo`]).
    pub(super) owners: std::cell::RefCell<OwnerMemo>,
    /// Where records and events are encoded before they are stored (reused, see
    /// [`encode_into`]).
    scratch: Vec<u8>,
}

/// Owners already resolved (as given → user id and team): nearly every create names one of
/// a few users. The writer keeps it from batch to batch; commands that change accounts clear
/// it, and so does a batch that did not commit (it may have resolved users that batch made).
pub(crate) type OwnerMemo = std::collections::HashMap<String, (String, Option<String>)>;

/// Per-batch state the writer threads through every command.
pub(crate) struct Ctx<'a> {
    pub now: Timestamp,
    /// Whether `now` lies in the past (a `Backdated` command): ids then skip the monotonic
    /// context.
    pub backdated: bool,
    pub actor: &'a str,
    pub ids: &'a IdGenerator,
    /// The next event sequence number; advanced only by commands that write.
    pub next_seq: &'a mut u64,
    /// Plugin validators and computed fields, when any are installed.
    pub hook: Option<&'a dyn WriteHook>,
    /// The chain depth events written now carry (see [`Event::depth`]).
    pub depth: u8,
    /// The signed-in user a [`Command::Scoped`] runs as; `None` for the system.
    pub access: Option<crate::account::Access>,
}

impl<'t> Tables<'t> {
    /// Opens the write path's tables; given a buffer, they record a redo record in it (see
    /// [`super::wal::begin`]). `owners` is what earlier batches resolved.
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        redo: Option<Vec<u8>>,
        owners: OwnerMemo,
    ) -> Result<Self, Error> {
        let open = Opener {
            txn,
            redo: redo.map(|buf| Rc::new(std::cell::RefCell::new(super::wal::begin(buf)))),
        };
        Ok(Tables {
            txn,
            records: EntityKind::ALL.iter().map(|_| OnceCell::new()).collect(),
            unique: OnceCell::new(),
            text: OnceCell::new(),
            refs: OnceCell::new(),
            time: OnceCell::new(),
            pipelines: OnceCell::new(),
            events: open.events()?,
            events_by_record: open.events_by_record()?,
            fields: open.field_defs()?,
            redo: open.redo,
            defs: BTreeMap::new(),
            touched: Vec::new(),
            owners: std::cell::RefCell::new(owners),
            scratch: Vec::with_capacity(1024),
        })
    }

    /// Opens tables, logging into this batch's redo record.
    fn opener(&self) -> Opener<'t> {
        Opener {
            txn: self.txn,
            redo: self.redo.clone(),
        }
    }

    /// Opens the scores table, logging into this batch's redo record.
    pub(super) fn scores(&self) -> Result<Logged<'t, (u128, &'static str), &'static [u8]>, Error> {
        Ok(self.opener().scores()?)
    }

    pub(super) fn table(
        &self,
        kind: EntityKind,
    ) -> Result<&Logged<'t, u128, &'static [u8]>, Error> {
        let cell = &self.records[usize::from(kind.tag() - 1)];
        opened(cell, || self.opener().records(kind))
    }

    fn table_mut(
        &mut self,
        kind: EntityKind,
    ) -> Result<&mut Logged<'t, u128, &'static [u8]>, Error> {
        let open = self.opener();
        opened_mut(&mut self.records[usize::from(kind.tag() - 1)], || {
            open.records(kind)
        })
    }

    fn unique(&self) -> Result<&Logged<'t, (&'static str, &'static str), u128>, Error> {
        opened(&self.unique, || self.opener().unique())
    }

    fn unique_mut(&mut self) -> Result<&mut Logged<'t, (&'static str, &'static str), u128>, Error> {
        let open = self.opener();
        opened_mut(&mut self.unique, || open.unique())
    }

    fn text(&self) -> Result<&Logged<'t, (&'static str, &'static str, u128), ()>, Error> {
        opened(&self.text, || self.opener().text())
    }

    fn text_mut(
        &mut self,
    ) -> Result<&mut Logged<'t, (&'static str, &'static str, u128), ()>, Error> {
        let open = self.opener();
        opened_mut(&mut self.text, || open.text())
    }

    fn refs(&self) -> Result<&Logged<'t, (u128, i64, u128), u8>, Error> {
        opened(&self.refs, || self.opener().refs())
    }

    fn refs_mut(&mut self) -> Result<&mut Logged<'t, (u128, i64, u128), u8>, Error> {
        let open = self.opener();
        opened_mut(&mut self.refs, || open.refs())
    }

    fn time_mut(&mut self) -> Result<&mut Logged<'t, (&'static str, i64, u128), ()>, Error> {
        let open = self.opener();
        opened_mut(&mut self.time, || open.time())
    }

    fn pipelines(&self) -> Result<&Logged<'t, &'static str, &'static [u8]>, Error> {
        opened(&self.pipelines, || self.opener().pipelines())
    }

    fn pipelines_mut(&mut self) -> Result<&mut Logged<'t, &'static str, &'static [u8]>, Error> {
        let open = self.opener();
        opened_mut(&mut self.pipelines, || open.pipelines())
    }

    pub(super) fn load<R: Record>(&self, id: Id) -> Result<Option<R>, Error> {
        match self.table(R::KIND)?.get(id.as_u128())? {
            Some(bytes) => Ok(Some(decode(bytes.value(), || format!("{} {id}", R::KIND))?)),
            None => Ok(None),
        }
    }

    fn field_defs(&mut self, kind: EntityKind) -> Result<Rc<[FieldDef]>, Error> {
        if let Some(defs) = self.defs.get(&kind) {
            return Ok(defs.clone());
        }
        let defs: Rc<[FieldDef]> = super::read::field_defs(&*self.fields, kind)?.into();
        self.defs.insert(kind, defs.clone());
        Ok(defs)
    }

    /// Runs one command.
    pub(crate) fn apply(&mut self, cmd: Command, ctx: &mut Ctx<'_>) -> Result<Outcome, Error> {
        if cmd.touches_accounts() {
            self.owners.get_mut().clear();
        }
        match cmd {
            Command::Create { kind, input } => {
                with_kind!(kind, R => self.create::<R>(input, ctx).map(|r| Outcome::Record(r.into_any())))
            }
            Command::Update { kind, id, input } => {
                with_kind!(kind, R => self.update::<R>(id, input, ctx).map(|r| Outcome::Record(r.into_any())))
            }
            Command::Delete { kind, id } => self.delete(kind, id, ctx).map(|()| Outcome::Deleted),
            Command::DefineField { kind, def } => self.define_field(kind, def, ctx.now),
            Command::DeleteField { kind, name } => self.delete_field(kind, &name),
            Command::ChangeField {
                kind,
                name,
                changes,
            } => self.change_field(kind, &name, changes),
            Command::PutPipeline(p) => self.put_pipeline(p),
            Command::PutPlugin {
                plugin,
                wasm,
                fields,
            } => self
                .put_plugin(plugin, wasm, fields, *ctx.next_seq - 1)
                .map(Outcome::Plugin),
            Command::RemovePlugin { id } => self.remove_plugin(&id).map(|()| Outcome::Deleted),
            Command::PluginKv {
                plugin,
                set,
                delete,
                quota,
            } => self
                .plugin_kv(&plugin, set, delete, quota)
                .map(|()| Outcome::Done),
            Command::PutScores(batch) => self.put_scores(batch).map(|()| Outcome::Done),
            Command::Deliver(d) => self.deliver(d, ctx).map(|()| Outcome::Done),
            Command::DeliveryFailed { plugin, failure } => self
                .delivery_failed(&plugin, failure)
                .map(|()| Outcome::Done),
            Command::Backdated { at, command } => {
                if at > ctx.now {
                    return Err(Error::invalid(
                        "at",
                        format!("{at} is in the future; only past times can be backdated"),
                    ));
                }
                if matches!(*command, Command::Backdated { .. }) {
                    return Err(Error::invalid(
                        "at",
                        "a backdated command cannot nest another",
                    ));
                }
                let mut inner = Ctx {
                    now: at,
                    backdated: true,
                    actor: ctx.actor,
                    ids: ctx.ids,
                    next_seq: &mut *ctx.next_seq,
                    hook: ctx.hook,
                    depth: ctx.depth,
                    access: ctx.access.clone(),
                };
                self.apply(*command, &mut inner)
            }
            Command::Scoped { access, command } => {
                if !matches!(
                    *command,
                    Command::Create { .. } | Command::Update { .. } | Command::Delete { .. }
                ) {
                    return Err(Error::invalid(
                        "command",
                        "only record creates, updates and deletes can be scoped to a user",
                    ));
                }
                if !access.may_write {
                    return Err(Error::Forbidden(
                        "your role is read-only: nothing can be changed".to_owned(),
                    ));
                }
                let mut inner = Ctx {
                    now: ctx.now,
                    backdated: ctx.backdated,
                    actor: ctx.actor,
                    ids: ctx.ids,
                    next_seq: &mut *ctx.next_seq,
                    hook: ctx.hook,
                    depth: ctx.depth,
                    access: Some(access),
                };
                self.apply(*command, &mut inner)
            }
            Command::CreateUser(u) => self.create_user(u, ctx).map(Outcome::User),
            Command::UpdateUser { id, changes } => {
                self.update_user(id, changes, ctx).map(Outcome::User)
            }
            Command::PutTeam(t) => self.put_team(t).map(Outcome::Team),
            Command::DeleteTeam { key } => self.delete_team(&key).map(|()| Outcome::Deleted),
            Command::CreateToken(t) => self.create_token(t, ctx).map(Outcome::Token),
            Command::RevokeToken { id } => self.revoke_token(id, ctx).map(Outcome::Token),
            Command::StartSession(s) => self.start_session(s, ctx).map(|()| Outcome::Done),
            Command::EndSession { hash } => self.end_session(&hash).map(|()| Outcome::Done),
            Command::SetOrgSettings(s) => self.set_org_settings(&s).map(|()| Outcome::Done),
        }
    }

    pub(super) fn create<R: Record>(
        &mut self,
        input: Input,
        ctx: &mut Ctx<'_>,
    ) -> Result<R, Error> {
        let id = if ctx.backdated {
            ctx.ids.backdated(&ctx.now)
        } else {
            ctx.ids.next(&ctx.now)
        };
        let mut r = R::blank(id, ctx.now);
        let owner_given = input.fields.contains_key("owner");
        let team_given = input.fields.contains_key("team");
        for (k, v) in input.fields {
            r.set(&k, v)?;
        }
        self.settle_owner(&mut r, None, owner_given, team_given, ctx)?;
        self.check_refs_visible(&r, None, ctx)?;
        let defs = self.field_defs(R::KIND)?;
        custom::apply(&defs, r.custom_mut(), input.custom, self, R::KIND)?;
        r.prepare(None, ctx.now, self)?;
        self.run_hook(&mut r, None, &defs, ctx)?;
        let keys = all_index_keys(&r);
        self.check_unique(&keys, id, ctx)?;
        // Validation is complete: from here on only storage errors can occur.
        self.put(&r)?;
        self.add_keys(R::KIND, id, &keys)?;
        let changes = event::created(&r);
        self.append(ctx, R::KIND, id, Operation::Created, changes)?;
        Ok(r)
    }

    pub(super) fn update<R: Record>(
        &mut self,
        id: Id,
        input: Input,
        ctx: &mut Ctx<'_>,
    ) -> Result<R, Error> {
        let before: R = self
            .load(id)?
            .ok_or(Error::NotFound { kind: R::KIND, id })?;
        self.check_may_change(&before, ctx)?;
        let mut r = before.clone();
        let owner_given = input.fields.contains_key("owner");
        let team_given = input.fields.contains_key("team");
        for (k, v) in input.fields {
            r.set(&k, v)?;
        }
        if owner_given || team_given {
            self.settle_owner(&mut r, Some(&before), owner_given, team_given, ctx)?;
        }
        self.check_refs_visible(&r, Some(&before), ctx)?;
        let defs = self.field_defs(R::KIND)?;
        let mut custom_values = r.custom().clone();
        custom::apply(&defs, &mut custom_values, input.custom, self, R::KIND)?;
        *r.custom_mut() = custom_values;
        r.prepare(Some(&before), ctx.now, self)?;
        self.run_hook(&mut r, Some(&before), &defs, ctx)?;
        let changes = event::diff(&field_map(&before), &field_map(&r));
        if changes.is_empty() {
            return Ok(before);
        }
        r.touch(ctx.now);
        let old_keys = all_index_keys(&before);
        let new_keys = all_index_keys(&r);
        self.check_unique(&new_keys, id, ctx)?;
        self.put(&r)?;
        self.swap_keys(R::KIND, id, &old_keys, &new_keys)?;
        self.append(ctx, R::KIND, id, Operation::Updated, changes)?;
        Ok(r)
    }

    /// Runs the plugins' validators and sets computed fields (see [`WriteHook`]).
    fn run_hook<R: Record + Clone + IntoAny>(
        &mut self,
        r: &mut R,
        before: Option<&R>,
        defs: &[FieldDef],
        ctx: &Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(hook) = ctx.hook.filter(|h| h.applies_to(R::KIND)) else {
            return Ok(());
        };
        let any = r.clone().into_any();
        let before = before.map(|b| b.clone().into_any());
        let computed = hook.before_write(&any, before.as_ref(), ctx.now)?;
        for (name, value) in computed {
            let Some(def) = defs.iter().find(|d| d.name == name && d.computed) else {
                let e = Error::UnknownField {
                    kind: R::KIND,
                    field: format!("custom.{name}"),
                };
                hook.computed_rejected(R::KIND, &name, &e);
                continue;
            };
            match def.convert(value, self) {
                Ok(Value::Null) => {
                    r.custom_mut().remove(&name);
                }
                Ok(v) => {
                    r.custom_mut().insert(name, v);
                }
                Err(e) => hook.computed_rejected(R::KIND, &name, &e),
            }
        }
        Ok(())
    }

    fn delete(&mut self, kind: EntityKind, id: Id, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        if self.table(kind)?.get(id.as_u128())?.is_none() {
            return Err(Error::NotFound { kind, id });
        }
        if ctx.access.is_some() {
            let (owner, team) = with_kind!(kind, R => {
                let r = self.load::<R>(id)?.ok_or(Error::NotFound { kind, id })?;
                (r.owner().map(str::to_owned), r.team().map(str::to_owned))
            });
            self.check_may_delete(kind, id, owner.as_deref(), team.as_deref(), ctx)?;
            let referrers = self.referrers_of(id)?;
            self.check_cascade(id, &referrers, ctx)?;
        }
        // Deleting can cascade (an interaction left linked to nothing goes too), so work
        // through a queue; `seen` stops cycles through custom reference fields.
        let mut queue = vec![(kind, id)];
        let mut seen = BTreeSet::new();
        while let Some((kind, id)) = queue.pop() {
            if !seen.insert(id) {
                continue;
            }
            let mut referrers = Vec::new();
            for entry in self
                .refs()?
                .range((id.as_u128(), i64::MIN, 0)..=(id.as_u128(), i64::MAX, u128::MAX))?
            {
                let (key, tag) = entry?;
                let (_, _, source) = key.value();
                if let Some(k) = EntityKind::from_tag(tag.value()) {
                    referrers.push((k, Id::from_u128(source)));
                }
            }
            referrers.sort();
            referrers.dedup();
            with_kind!(kind, R => self.remove::<R>(id, ctx))?;
            for (k, source) in referrers {
                if seen.contains(&source) {
                    continue;
                }
                let orphaned = with_kind!(k, R => self.unlink::<R>(source, id, ctx))?;
                if orphaned {
                    queue.push((k, source));
                }
            }
        }
        Ok(())
    }

    fn remove<R: Record>(&mut self, id: Id, ctx: &mut Ctx<'_>) -> Result<(), Error> {
        let Some(before) = self.load::<R>(id)? else {
            return Ok(());
        };
        let keys = all_index_keys(&before);
        self.table_mut(R::KIND)?.remove(id.as_u128())?;
        self.remove_keys(R::KIND, id, &keys)?;
        self.remove_scores_of(id)?;
        let changes = event::diff(&field_map(&before), &BTreeMap::new());
        self.append(ctx, R::KIND, id, Operation::Deleted, changes)
    }

    /// Clears `source`'s references to `target`. Returns true when `source` is an interaction
    /// or task left linked to nothing, which the caller then deletes.
    /// The records that refer to `target` (kind and id), from the reference index.
    fn referrers_of(&self, target: Id) -> Result<Vec<(EntityKind, Id)>, Error> {
        let mut out = Vec::new();
        for entry in self
            .refs()?
            .range((target.as_u128(), i64::MIN, 0)..=(target.as_u128(), i64::MAX, u128::MAX))?
        {
            let (key, tag) = entry?;
            if let Some(k) = EntityKind::from_tag(tag.value()) {
                out.push((k, Id::from_u128(key.value().2)));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn unlink<R: Record>(
        &mut self,
        source: Id,
        target: Id,
        ctx: &mut Ctx<'_>,
    ) -> Result<bool, Error> {
        let Some(before) = self.load::<R>(source)? else {
            return Ok(false);
        };
        let mut r = before.clone();
        if !r.clear_reference(target) {
            return Ok(false);
        }
        let linked = matches!(R::KIND, EntityKind::Interaction | EntityKind::Task);
        if linked && r.references().is_empty() {
            return Ok(true);
        }
        r.touch(ctx.now);
        let changes = event::diff(&field_map(&before), &field_map(&r));
        self.put(&r)?;
        self.swap_keys(
            R::KIND,
            source,
            &all_index_keys(&before),
            &all_index_keys(&r),
        )?;
        self.append(ctx, R::KIND, source, Operation::Updated, changes)?;
        Ok(false)
    }

    /// Refuses a unique value (a contact's email) another record holds. The holder is named
    /// only to callers who see every record; to others it may be one they cannot see.
    fn check_unique(&self, keys: &[IndexKey], id: Id, ctx: &Ctx<'_>) -> Result<(), Error> {
        for key in keys {
            if let IndexKey::Unique { index, value } = key
                && let Some(holder) = self.unique()?.get((*index, value.as_str()))?
            {
                let holder = Id::from_u128(holder.value());
                if holder != id {
                    let field = index.rsplit('.').next().unwrap_or(index);
                    let message = if ctx.access.as_ref().is_some_and(|a| !a.sees_all) {
                        format!("'{value}' is already used by another record")
                    } else {
                        format!("'{value}' is already used by {holder}")
                    };
                    return Err(Error::Conflict {
                        field: field.to_owned(),
                        message,
                    });
                }
            }
        }
        Ok(())
    }

    fn put<R: Record>(&mut self, r: &R) -> Result<(), Error> {
        encode_into(&mut self.scratch, r)?;
        let open = self.opener();
        // By field rather than through `table_mut`, so the encoded bytes may stay borrowed.
        let table = opened_mut(&mut self.records[usize::from(R::KIND.tag() - 1)], || {
            open.records(R::KIND)
        })?;
        table.insert(r.id().as_u128(), self.scratch.as_slice())?;
        Ok(())
    }

    fn swap_keys(
        &mut self,
        kind: EntityKind,
        id: Id,
        old: &[IndexKey],
        new: &[IndexKey],
    ) -> Result<(), Error> {
        let gone: Vec<IndexKey> = old.iter().filter(|k| !new.contains(k)).cloned().collect();
        let added: Vec<IndexKey> = new.iter().filter(|k| !old.contains(k)).cloned().collect();
        self.remove_keys(kind, id, &gone)?;
        self.add_keys(kind, id, &added)
    }

    fn add_keys(&mut self, kind: EntityKind, id: Id, keys: &[IndexKey]) -> Result<(), Error> {
        let raw = id.as_u128();
        for key in keys {
            match key {
                IndexKey::Unique { index, value } => {
                    self.unique_mut()?.insert((*index, value.as_str()), raw)?;
                }
                IndexKey::Text { index, value } => {
                    self.text_mut()?.insert((*index, value.as_str(), raw), ())?;
                }
                IndexKey::Ref { target, time } => {
                    self.refs_mut()?
                        .insert((target.as_u128(), *time, raw), kind.tag())?;
                }
                IndexKey::Time { index, time } => {
                    self.time_mut()?.insert((*index, *time, raw), ())?;
                }
            }
        }
        Ok(())
    }

    fn remove_keys(&mut self, _kind: EntityKind, id: Id, keys: &[IndexKey]) -> Result<(), Error> {
        let raw = id.as_u128();
        for key in keys {
            match key {
                IndexKey::Unique { index, value } => {
                    self.unique_mut()?.remove((*index, value.as_str()))?;
                }
                IndexKey::Text { index, value } => {
                    self.text_mut()?.remove((*index, value.as_str(), raw))?;
                }
                IndexKey::Ref { target, time } => {
                    self.refs_mut()?.remove((target.as_u128(), *time, raw))?;
                }
                IndexKey::Time { index, time } => {
                    self.time_mut()?.remove((*index, *time, raw))?;
                }
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: EntityKind,
        id: Id,
        op: Operation,
        changes: Vec<FieldChange>,
    ) -> Result<(), Error> {
        let seq = *ctx.next_seq;
        let event = Event {
            seq,
            kind,
            id,
            op,
            changes,
            actor: ctx.actor.to_owned(),
            at: ctx.now,
            depth: ctx.depth,
        };
        encode_into(&mut self.scratch, &event)?;
        self.events.insert(seq, self.scratch.as_slice())?;
        self.events_by_record.insert((id.as_u128(), seq), ())?;
        *ctx.next_seq += 1;
        self.touched.push(id);
        Ok(())
    }

    fn define_field(
        &mut self,
        kind: EntityKind,
        def: NewFieldDef,
        now: Timestamp,
    ) -> Result<Outcome, Error> {
        let def = def.into_def(kind, now)?;
        self.defs.remove(&kind);
        if self.fields.get((kind.name(), def.name.as_str()))?.is_some() {
            return Err(Error::Conflict {
                field: "name".to_owned(),
                message: format!("{kind} already has a custom field '{}'", def.name),
            });
        }
        let bytes = encode(&def)?;
        self.fields
            .insert((kind.name(), def.name.as_str()), bytes.as_slice())?;
        Ok(Outcome::Field(def))
    }

    /// The stored definition of custom field `name` of `kind`.
    fn field_def(&self, kind: EntityKind, name: &str) -> Result<FieldDef, Error> {
        match self.fields.get((kind.name(), name))? {
            Some(v) => Ok(decode(v.value(), || format!("custom field {kind}.{name}"))?),
            None => Err(Error::NoSuch {
                what: "custom field",
                name: format!("{kind}.{name}"),
            }),
        }
    }

    fn change_field(
        &mut self,
        kind: EntityKind,
        name: &str,
        changes: crate::custom::FieldChanges,
    ) -> Result<Outcome, Error> {
        let old = self.field_def(kind, name)?;
        let def = old.changed(changes)?;
        self.defs.remove(&kind);
        let bytes = encode(&def)?;
        self.fields
            .insert((kind.name(), def.name.as_str()), bytes.as_slice())?;
        Ok(Outcome::Field(def))
    }

    fn delete_field(&mut self, kind: EntityKind, name: &str) -> Result<Outcome, Error> {
        self.defs.remove(&kind);
        let old = self.field_def(kind, name)?;
        if let Some(plugin) = old.plugin {
            return Err(Error::Conflict {
                field: "name".to_owned(),
                message: format!(
                    "{kind}.{name} belongs to plugin '{plugin}'; it goes when the plugin is uninstalled"
                ),
            });
        }
        self.fields.remove((kind.name(), name))?;
        Ok(Outcome::Deleted)
    }

    fn put_pipeline(&mut self, mut p: Pipeline) -> Result<Outcome, Error> {
        p.validate()?;
        if let Some(old) = self.pipelines()?.get(p.key.as_str())? {
            let old: Pipeline = decode(old.value(), || format!("pipeline {}", p.key))?;
            // A stage that this pipeline's deals sit in must keep existing, and keep its
            // outcome: deals store the status their stage implied when they were written.
            for stage in &old.stages {
                let problem = match p.stage(&stage.key) {
                    None => "remove it",
                    Some(new) if new.outcome != stage.outcome => "change its outcome",
                    Some(_) => continue,
                };
                if self.pipeline_has_deals_in(&p.key, &stage.key)? {
                    return Err(Error::invalid(
                        "stages",
                        format!(
                            "stage '{}' still has deals; move them to another stage before you {problem}",
                            stage.key
                        ),
                    ));
                }
            }
        }
        let bytes = encode(&p)?;
        self.pipelines_mut()?
            .insert(p.key.as_str(), bytes.as_slice())?;
        Ok(Outcome::Pipeline(p))
    }

    /// Whether any deal of `pipeline` is in `stage`. The stage index is keyed by stage alone
    /// (so `stage=proposal` filters need no pipeline), hence the check of each hit.
    fn pipeline_has_deals_in(&self, pipeline: &str, stage: &str) -> Result<bool, Error> {
        for entry in self
            .text()?
            .range(("deal.stage", stage, 0)..=("deal.stage", stage, u128::MAX))?
        {
            let id = Id::from_u128(entry?.0.value().2);
            if let Some(deal) = self.load::<crate::entity::Deal>(id)?
                && deal.pipeline == pipeline
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The table in `cell`, opened on first use.
fn opened<T>(
    cell: &OnceCell<T>,
    open: impl FnOnce() -> Result<T, redb::TableError>,
) -> Result<&T, Error> {
    if let Some(table) = cell.get() {
        return Ok(table);
    }
    let table = open()?;
    Ok(cell.get_or_init(|| table))
}

/// The table in `cell`, opened on first use, to change.
fn opened_mut<T>(
    cell: &mut OnceCell<T>,
    open: impl FnOnce() -> Result<T, redb::TableError>,
) -> Result<&mut T, Error> {
    if cell.get().is_none() {
        let _ = cell.set(open()?);
    }
    Ok(cell.get_mut().expect("the cell was filled just above"))
}

impl Lookup for Tables<'_> {
    fn exists(&self, kind: EntityKind, id: Id) -> Result<bool, Error> {
        Ok(self.table(kind)?.get(id.as_u128())?.is_some())
    }

    fn pipeline(&self, key: &str) -> Result<Option<Pipeline>, Error> {
        match self.pipelines()?.get(key)? {
            Some(b) => Ok(Some(decode(b.value(), || format!("pipeline {key}"))?)),
            None => Ok(None),
        }
    }
}
