//! Bulk requests (RFC 7644 §3.7): parsing and planning, free of I/O.
