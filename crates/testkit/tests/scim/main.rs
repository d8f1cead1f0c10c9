//! The integration suite: real scimd servers, in-process on free ports, driven over HTTP.

mod admin;
mod auth;
mod support;
mod users;
