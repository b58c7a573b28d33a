//! Kith's end-to-end tests: each test starts a real server on a loopback port with its own
//! data directory and drives it over HTTP, the way a client would.
//!
//! This is the one integration-test binary of the workspace (separate binaries link slowly and
//! run serially); every area of the API has its own module.

// Tests state their expectations with `unwrap` and `expect`: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod access;
mod accounts;
mod audit;
mod browser;
mod bundled_workflows;
mod concurrency;
mod crash;
mod crud;
mod demo;
mod errors;
mod lifecycle;
mod openapi;
mod pipelines;
mod plugins;
mod query;
mod reports;
mod restart;
mod sessions;
mod support;
mod timeline;
mod ui;
mod workflows;
