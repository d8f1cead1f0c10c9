//! The integration suite: real scimd servers, in-process on free ports, driven over HTTP.

mod admin;
mod admin_provisioning;
mod auth;
mod bulk;
mod console;
mod discovery;
mod doctor;
mod edge;
mod etags;
mod events;
mod filters;
mod groups;
mod hostile;
mod isolation;
mod metrics;
mod paging;
mod patch;
mod provisioning;
mod rate_limit;
mod support;
mod users;
mod webhooks;
