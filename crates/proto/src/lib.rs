//! The SCIM 2.0 protocol core (RFC 7643 schema, RFC 7644 protocol), free of I/O.
//!
//! Everything here takes `&str` / JSON in and returns `Result` out, so it can be fuzzed and
//! property-tested on its own. The server, the store and the provisioning rules all build on it.

#![warn(missing_docs)]

pub mod bulk;
pub mod error;
pub mod filter;
pub mod json;
pub mod list;
pub mod patch;
pub mod path;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
pub use filter::{CompValue, CompareOp, Filter};
pub use path::AttrPath;
pub use schema::ResourceKind;
