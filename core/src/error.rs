//! Typed errors. [`Error`] is the umbrella every store operation returns; [`FieldError`] names
//! one field and what is wrong with it; [`StoreError`] covers opening and storage failures.

use std::path::PathBuf;

use crate::entity::EntityKind;
use crate::id::Id;

/// One field's problem, e.g. `email: 'bob@' is not a valid email address`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name as the API spells it (`custom.tier` for a custom field).
    pub field: String,
    /// What is wrong, in a sentence fragment a user can act on.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field value failed validation (required, syntax, type, range, reference).
    #[error("{0}")]
    Invalid(FieldError),
    /// The input names a field the record kind does not have.
    #[error("{kind} has no field '{field}'")]
    UnknownField {
        /// The record kind.
        kind: EntityKind,
        /// The unknown field's name.
        field: String,
    },
    /// No record with this id.
    #[error("no {kind} with id {id}")]
    NotFound {
        /// The record kind.
        kind: EntityKind,
        /// The id that was asked for.
        id: Id,
    },
    /// A named thing (pipeline, custom field) does not exist.
    #[error("no {what} named '{name}'")]
    NoSuch {
        /// What was looked for ("pipeline", "custom field").
        what: &'static str,
        /// The name that was asked for.
        name: String,
    },
    /// The write would break a uniqueness rule.
    #[error("{field}: {message}")]
    Conflict {
        /// The field whose value is taken.
        field: String,
        /// Which record holds it.
        message: String,
    },
    /// A list query's filter, sort or cursor is malformed.
    #[error("{0}")]
    BadQuery(FieldError),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller may see the record but not do this to it (a read-only role, an agent
    /// deleting someone else's record).
    #[error("{0}")]
    Forbidden(String),
    /// The store is closing and takes no more writes.
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl Error {
    /// A validation error on `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(FieldError::new(field, message))
    }

    /// A malformed-query error on `field`.
    pub fn bad_query(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadQuery(FieldError::new(field, message))
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Invalid(e)
    }
}

/// Opening or storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory cannot be created or written.
    #[error("data directory {path}: {what}: {source}")]
    Directory {
        /// The directory (or the file in it that failed).
        path: PathBuf,
        /// What Kith was trying to do.
        what: &'static str,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Another process has the database open.
    #[error(
        "the database {path} is already in use by another Kith process; stop it or choose another data directory"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer Kith.
    #[error(
        "the database {path} uses on-disk format {found}, but this Kith reads formats up to {supported}; upgrade Kith to open it"
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The format version found in the file.
        found: u32,
        /// The newest format this build understands.
        supported: u32,
    },
    /// A stored value cannot be decoded.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why decoding failed.
        reason: String,
    },
    /// redb failed.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
}

macro_rules! redb_error_into_store_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Store(StoreError::Redb(e.into()))
            }
        }
    )*};
}

redb_error_into_store_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
