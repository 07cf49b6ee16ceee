//! Router tests of the HTTP API: a real `SqliteStore` in a temporary home, no daemon.

mod auth;
mod endpoints;
mod openapi;
mod races;
mod schema;
mod sse;
mod support;
