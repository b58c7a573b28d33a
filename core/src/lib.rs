//! kith-core: the CRM's domain model and its durable store.
//!
//! This crate knows nothing about HTTP, JSON-over-HTTP, tokio or wasmtime. It owns the
//! entities (contacts, companies, deals, tickets, interactions, tasks), their validation,
//! custom field definitions, pipelines, the redb store with its secondary indexes, list
//! queries and timelines, the event log, and the group-commit writer. Callers hand it plain
//! Rust values ([`Input`], [`Query`]) and get plain Rust values back.

pub mod account;
pub mod audit;
pub mod clock;
pub mod custom;
pub mod entity;
pub mod error;
pub mod event;
pub mod id;
pub mod money;
pub mod pipeline;
pub mod plugin;
pub mod query;
pub mod report;
pub mod schema;
pub mod store;
pub mod value;
pub mod workflow;

pub use account::{
    Access, AgentScope, Directory, NewUser, OrgSettings, Role, Team, Token, User, UserChanges,
    UserInfo,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use custom::{FieldDef, FieldType, NewFieldDef};
pub use entity::{AnyRecord, Company, Contact, Deal, EntityKind, Interaction, Task, Ticket};
pub use error::{Error, FieldError, StoreError};
pub use event::{Event, FieldChange, Operation};
pub use id::Id;
pub use pipeline::{Pipeline, Stage, StageOutcome};
pub use plugin::{
    PluginLimits, PluginRecord, ScoreBatch, ScoreReason, StoredScore, Suspension, WriteHook,
};
pub use query::{Filter, FilterOp, Page, Query, SortKey, TimelineItem};
pub use report::{ChartKind, Column, ParamDef, ParamKind, ReportDef, ReportTable, Reports, to_csv};
pub use store::{Actor, Command, Input, NewToken, Outcome, Scoped, Store, StoreConfig};
pub use value::Value;
pub use workflow::{
    Delivery, DeliveryFailure, DeliveryState, Effect, MAX_CHAIN_DEPTH, StoredTimer, TimerRef,
};
