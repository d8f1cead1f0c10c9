//! scimd's store: the domain's [`Store`](scimd_domain::store::Store) trait implemented on an
//! embedded SQLite database, and on PostgreSQL for several nodes. SQL lives here and nowhere else; business rules live in the domain.

#![warn(missing_docs)]

mod columns;
mod filter_sql;
pub mod migrate_data;
pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
