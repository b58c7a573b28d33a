//! kith-host: everything between the core and the outside world — the REST API on axum, the
//! web pages, the server lifecycle (start, graceful shutdown), demo data and the `kith` command's logic.
//!
//! Only this crate talks to axum and tokio; the core stays a plain library.

pub mod admin;
pub mod api;
pub mod bundled;
pub mod demo;
pub mod plugin;
pub mod server;
pub mod web;

pub use server::{Running, ServerConfig, StartError, start};
