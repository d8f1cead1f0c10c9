//! Provisioning rules: where each user lands (mappings → profile + storage region), the cloud's
//! limits (profile seats, cloud-wide email uniqueness, region health), the user's lifecycle
//! (active, pending, preserved, deleted), and what happens when a rule refuses.

pub mod admin;
pub mod claims;
pub mod model;
pub mod placement;
pub mod service;

pub use model::*;
