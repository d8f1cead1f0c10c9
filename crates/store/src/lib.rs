//! scimd's store: the domain's [`Store`](scimd_domain::store::Store) trait implemented on an
//! embedded SQLite database. SQL lives here and nowhere else; business rules live in the domain.

#![warn(missing_docs)]

pub mod sqlite;

pub use sqlite::SqliteStore;
