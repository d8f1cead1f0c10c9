//! What every console page shows around its content (the frame: who is signed in, the tenant,
//! the navigation) and how values read on a page.

use scimd_domain::tenant::Tenant;
use time::OffsetDateTime;

use super::session::Signed;

/// The page around the content.
#[derive(Clone)]
pub struct Frame {
    /// Who is signed in.
    pub actor: String,
    /// Whether they are an operator (shows the operator navigation).
    pub is_operator: bool,
    /// The session's CSRF token, for forms and htmx.
    pub csrf: String,
    /// The tenant the page is about (empty on operator and account pages).
    pub tenant_id: String,
    /// Its name.
    pub tenant_name: String,
    /// The navigation entry to highlight.
    pub section: &'static str,
    /// The page's title.
    pub title: String,
}

// Never the CSRF token, not even in a debug log.
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame").field("actor", &self.actor).field("tenant_id", &self.tenant_id).finish_non_exhaustive()
    }
}

impl Frame {
    /// A page about no tenant.
    pub fn new(signed: &Signed, section: &'static str, title: impl Into<String>) -> Frame {
        Frame {
            actor: signed.principal.actor.clone(),
            is_operator: signed.principal.is_operator(),
            csrf: signed.csrf.clone(),
            tenant_id: String::new(),
            tenant_name: String::new(),
            section,
            title: title.into(),
        }
    }

    /// A page about one tenant.
    pub fn tenant(signed: &Signed, tenant: &Tenant, section: &'static str, title: impl Into<String>) -> Frame {
        Frame { tenant_id: tenant.id.clone(), tenant_name: tenant.name.clone(), ..Frame::new(signed, section, title) }
    }
}

/// A moment as pages show it: `2026-12-07 15:04 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// An optional moment, or a dash.
pub fn maybe_when(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "—".to_owned(), when)
}

/// Pretty-printed JSON for a `<pre>`.
pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
